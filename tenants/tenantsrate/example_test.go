package tenantsrate_test

import (
	"fmt"
	"strconv"

	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantsrate"
)

func ExampleLimiter_Allow() {
	// In the gateway the rates come from the registry's snapshot.
	limits := map[tenants.ID]tenantsrate.Rates{
		"acme": {TenantRPS: 300, TenantBurst: 60, AppRPS: 1, AppBurst: 3},
	}
	l, err := tenantsrate.New(func(id tenants.ID) tenantsrate.Rates { return limits[id] }, tenantsrate.Config{})
	if err != nil {
		panic(err)
	}
	// Three gateway nodes: this one allows the tenant 100/s with a burst of
	// 20, and each app one request every 3 s with a burst of 1.
	l.SetShare(3)

	for range 3 {
		if ok, retry := l.Allow("acme", "checkout", 1); !ok {
			// 429 Too Many Requests, with:
			fmt.Println("Retry-After:", strconv.FormatInt(tenantsrate.RetryAfterSeconds(retry), 10))
			continue
		}
		fmt.Println("allowed")
	}
	// Output:
	// allowed
	// Retry-After: 3
	// Retry-After: 3
}
