package interop

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

const (
	mochiModule = "github.com/mochi-mqtt/server/v2"
	// mochiMaxPacket is the Maximum Packet Size mochi-mqtt is given.
	mochiMaxPacket = 1 << 20
)

var mochiBroker = newLazy("mochi-mqtt", startMochi)

// startMochi runs the mochi-mqtt broker in this process on a free loopback
// port, with anonymous access, one password user and a 1 MiB packet limit.
func startMochi(dir string) (*broker, error) {
	logPath := filepath.Join(dir, "mochi.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = mochiMaxPacket
	srv := mochi.New(&mochi.Options{
		Capabilities: caps,
		Logger:       slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	ledger := &auth.Ledger{
		Users: auth.Users{testUser: {Password: testPassword}},
		Auth: auth.AuthRules{
			{Username: testUser, Allow: false}, // the user with a wrong password
			{Allow: true},                      // anyone else, anonymous included
		},
	}
	if err := srv.AddHook(new(auth.Hook), &auth.Options{Ledger: ledger}); err != nil {
		logf.Close()
		return nil, err
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		logf.Close()
		return nil, err
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		logf.Close()
		return nil, err
	}
	version := mochiVersion()
	return &broker{
		name: "mochi-mqtt", version: version, url: "mqtt://" + tcp.Address(),
		user: testUser, pass: testPassword,
		stop: func() error {
			err := srv.Close()
			logf.Close()
			return err
		},
		log: func() string {
			data, err := os.ReadFile(logPath)
			if err != nil {
				return fmt.Sprintf("<cannot read mochi log: %v>", err)
			}
			return string(data)
		},
	}, nil
}

// mochiVersion returns the version of mochi-mqtt built in: from the build
// information, which test binaries lack, or else from this module's go.mod
// (tests run in the package directory).
func mochiVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == mochiModule {
				return m.Version
			}
		}
	}
	if data, err := os.ReadFile("go.mod"); err == nil {
		for line := range strings.Lines(string(data)) {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == mochiModule {
				return f[1]
			}
		}
	}
	return "unknown"
}
