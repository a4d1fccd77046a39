//go:build unix

// Package filestore is a crash-safe [mqtt.Store]: it keeps a client's
// in-flight QoS 1 and 2 state in an append-only log file, so that the
// session survives a crash of the process (kill -9) and, with SyncAlways,
// of the operating system.
//
// Open a store and hand it to the client in [mqtt.Config].Store:
//
//	st, err := filestore.Open("/var/lib/svc/mqtt.store", nil) // nil: SyncAlways
//	if err != nil {
//		return err
//	}
//	c, err := mqtt.Connect(ctx, mqtt.Config{Servers: servers, ClientID: "svc-1", Store: st})
//	if err != nil {
//		st.Close()
//		return err
//	}
//	defer c.Close() // a client that Connect returned closes its store when it stops
//
// The client records each change before it sends the packet that follows
// from it (an outbound publish before PUBLISH, an inbound QoS 2 packet ID
// before PUBREC), so a process that restarts with the same file resumes the
// session where the crashed one left it. See [Store] for the log, how it
// recovers from damage, compaction, and the files it creates.
//
// The package builds on Unix systems: it relies on flock(2) and
// O_NOFOLLOW.
package filestore
