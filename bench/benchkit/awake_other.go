//go:build !linux

package benchkit

import (
	"errors"
	"io"
)

const spinnersSupported = false

func spin(int, io.Reader) error { return errors.New("idle spinners need Linux's SCHED_IDLE") }
