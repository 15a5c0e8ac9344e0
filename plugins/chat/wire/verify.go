package wire

import (
	"crypto/ed25519"
	"sync"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Checking signatures is most of what a busy node does with a room message:
// each is checked once on every node that carries the room. The same few
// authors sign most of them, so each author's key is kept expanded (its
// precomputed point, 1.5 KiB), which halves the cost of a check. The rule
// is Go's crypto/ed25519's (cofactorless, as before), so what verifies is
// unchanged.

var stdlibRule = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// maxKeys bounds the cache to about 1.5 MiB.
const maxKeys = 1024

var keys = struct {
	sync.Mutex
	m map[string]*voi.ExpandedPublicKey
}{m: map[string]*voi.ExpandedPublicKey{}}

// checkSig reports whether sig is pub's Ed25519 signature of msg.
func checkSig(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	k := expanded(pub)
	if k == nil {
		return false
	}
	return voi.VerifyExpandedWithOptions(k, msg, sig, stdlibRule)
}

// expanded returns pub expanded, from the cache when it is there; nil if
// pub is not a point.
func expanded(pub ed25519.PublicKey) *voi.ExpandedPublicKey {
	keys.Lock()
	k := keys.m[string(pub)]
	keys.Unlock()
	if k != nil {
		return k
	}
	k, err := voi.NewExpandedPublicKey(voi.PublicKey(pub))
	if err != nil {
		return nil
	}
	keys.Lock()
	if len(keys.m) >= maxKeys {
		for old := range keys.m { // one that Go's map order picks at random
			delete(keys.m, old)
			break
		}
	}
	keys.m[string(pub)] = k
	keys.Unlock()
	return k
}
