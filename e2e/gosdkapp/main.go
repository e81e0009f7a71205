// Command gosdkapp is a Dapr application written against the official Go
// SDK and nothing else. The end-to-end tests run it with the environment
// that `blockgate serve --dev` prints (DAPR_GRPC_ENDPOINT, DAPR_API_TOKEN)
// to prove an unchanged SDK program works against the gateway.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	dapr "github.com/dapr/go-sdk/client"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("OK")
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := dapr.NewClient()
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer client.Close()
	const store = "statestore"
	key := fmt.Sprintf("order-%d", time.Now().UnixNano())

	// Save and read back.
	if err := client.SaveState(ctx, store, key, []byte(`{"qty":3}`), nil); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	item, err := client.GetState(ctx, store, key, nil)
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if string(item.Value) != `{"qty":3}` || item.Etag == "" {
		return fmt.Errorf("get returned value %q etag %q", item.Value, item.Etag)
	}

	// Optimistic concurrency: the current ETag wins, a stale one loses.
	if err := client.SaveStateWithETag(ctx, store, key, []byte(`{"qty":4}`), item.Etag, nil); err != nil {
		return fmt.Errorf("save with current etag: %w", err)
	}
	if err := client.SaveStateWithETag(ctx, store, key, []byte(`{"qty":5}`), item.Etag, nil); err == nil {
		return errors.New("save with a stale etag succeeded")
	}

	// A transaction: upsert two keys and delete the first, atomically.
	ops := []*dapr.StateOperation{
		{Type: dapr.StateOperationTypeUpsert, Item: &dapr.SetStateItem{Key: key + "-a", Value: []byte("A")}},
		{Type: dapr.StateOperationTypeUpsert, Item: &dapr.SetStateItem{Key: key + "-b", Value: []byte("B")}},
		{Type: dapr.StateOperationTypeDelete, Item: &dapr.SetStateItem{Key: key}},
	}
	if err := client.ExecuteStateTransaction(ctx, store, nil, ops); err != nil {
		return fmt.Errorf("transaction: %w", err)
	}
	items, err := client.GetBulkState(ctx, store, []string{key, key + "-a", key + "-b"}, nil, 2)
	if err != nil {
		return fmt.Errorf("bulk get: %w", err)
	}
	got := map[string]string{}
	for _, it := range items {
		got[it.Key] = string(it.Value)
	}
	if got[key] != "" || got[key+"-a"] != "A" || got[key+"-b"] != "B" {
		return fmt.Errorf("after the transaction: %v", got)
	}

	// Delete.
	if err := client.DeleteBulkState(ctx, store, []string{key + "-a", key + "-b"}, nil); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	after, err := client.GetState(ctx, store, key+"-a", nil)
	if err != nil {
		return fmt.Errorf("get after delete: %w", err)
	}
	if len(after.Value) != 0 {
		return fmt.Errorf("deleted key still has value %q", after.Value)
	}
	return nil
}
