//go:build !linux

package benchkit

import "errors"

// Sample cannot measure anything without /proc.
func (m *CPUMeter) Sample() CPUSample { return CPUSample{} }

// PostmasterOf needs /proc.
func PostmasterOf(int) (int, error) {
	return 0, errors.New("no /proc to find the postmaster in")
}
