package mqtt_test

import (
	"testing"

	"github.com/b4e21b16/mqtt"
	"github.com/b4e21b16/mqtt/internal/storetest"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestMemoryStoreContract(t *testing.T) {
	t.Parallel()
	storetest.Contract(t, func(t *testing.T) mqtt.Store {
		s := mqtt.NewMemoryStore()
		t.Cleanup(func() { s.Close() })
		return s
	})
}
