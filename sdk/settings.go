package sdk

import (
	"errors"
	"regexp"

	"github.com/BurntSushi/toml"
)

// DecodeSettings decodes a plugin's TOML table into v (pre-filled with
// defaults) and reports unknown keys and wrong types as ConfigErrors, so the
// router can show them as plugins.NAME.KEY. It returns nil when all is well;
// a plugin appends its own checks of the values and returns the lot.
func DecodeSettings(settings []byte, v any) ConfigErrors {
	md, err := toml.Decode(string(settings), v)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return ConfigErrors{{Key: pe.LastKey, Message: pe.Message}}
		}
		if m := lastKey.FindStringSubmatch(err.Error()); m != nil {
			return ConfigErrors{{Key: m[1], Message: m[2]}}
		}
		return ConfigErrors{{Key: "", Message: err.Error()}}
	}
	var errs ConfigErrors
	for _, k := range md.Undecoded() {
		errs = append(errs, KeyError{Key: k.String(), Message: "unknown key"})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

var lastKey = regexp.MustCompile(`\(last key "([^"]*)"\): (.*)$`)
