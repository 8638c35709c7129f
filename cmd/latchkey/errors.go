package main

import (
	"errors"

	"github.com/latchkey/latchkey"
)

func latchkeyRole(s string) latchkey.Role { return latchkey.Role(s) }

// errorText turns a domain error into its human message for the console.
func errorText(err error) error {
	if latchkey.ErrorCode(err) == latchkey.EInternal {
		return err
	}
	return errors.New(latchkey.ErrorMessage(err))
}
