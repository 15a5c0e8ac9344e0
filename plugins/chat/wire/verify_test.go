package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
)

// checkSig must accept and refuse exactly what crypto/ed25519 does, for
// keys in the cache and keys pushed out of it.
func TestCheckSigAgreesWithStdlib(t *testing.T) {
	msg := []byte("vecino-chat-room-v1\nhello")
	type pair struct {
		pub  ed25519.PublicKey
		priv ed25519.PrivateKey
	}
	var ps []pair
	for range maxKeys + 10 { // more authors than the cache holds
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, pair{pub, priv})
	}
	for round := range 2 {
		for i, p := range ps {
			sig := ed25519.Sign(p.priv, msg)
			bad := append([]byte(nil), sig...)
			bad[i%64] ^= 1 << (i % 8)
			other := ps[(i+1)%len(ps)].pub
			for _, c := range []struct {
				name     string
				pub      ed25519.PublicKey
				msg, sig []byte
			}{
				{"good", p.pub, msg, sig},
				{"flipped bit", p.pub, msg, bad},
				{"other key", other, msg, sig},
				{"other text", p.pub, []byte("vecino-chat-room-v1\nhellO"), sig},
				{"short sig", p.pub, msg, sig[:63]},
			} {
				want := len(c.sig) == ed25519.SignatureSize && ed25519.Verify(c.pub, c.msg, c.sig)
				if got := checkSig(c.pub, c.msg, c.sig); got != want {
					t.Fatalf("round %d author %d, %s: checkSig %v, crypto/ed25519 %v", round, i, c.name, got, want)
				}
			}
		}
	}
	if n := len(keys.m); n > maxKeys {
		t.Errorf("key cache holds %d keys, more than %d", n, maxKeys)
	}
	// A key that is not a point on the curve verifies nothing.
	notPoint := make([]byte, 32)
	for i := range notPoint {
		notPoint[i] = 0xff
	}
	notPoint[31] = 0x7f
	sig := ed25519.Sign(ps[0].priv, msg)
	if checkSig(notPoint, msg, sig) {
		t.Error("a key that is not a point verified a signature")
	}
}

func BenchmarkCheckSig(b *testing.B) {
	for _, authors := range []int{32, 4 * maxKeys} {
		b.Run(fmt.Sprintf("authors=%d", authors), func(b *testing.B) {
			pubs, sigs := make([]ed25519.PublicKey, authors), make([][]byte, authors)
			msg := make([]byte, 1100)
			rand.Read(msg)
			for i := range pubs {
				pub, priv, _ := ed25519.GenerateKey(rand.Reader)
				pubs[i], sigs[i] = pub, ed25519.Sign(priv, msg)
			}
			b.Run("stdlib", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					if !ed25519.Verify(pubs[i%authors], msg, sigs[i%authors]) {
						b.Fatal("did not verify")
					}
				}
			})
			b.Run("checkSig", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					if !checkSig(pubs[i%authors], msg, sigs[i%authors]) {
						b.Fatal("did not verify")
					}
				}
			})
		})
	}
}
