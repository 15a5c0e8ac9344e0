package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/ipfs/boxo/bitswap/message/pb"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func testCID(t *testing.T, i int) cid.Cid {
	t.Helper()
	h, err := mh.Sum([]byte(fmt.Sprint(i)), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

// The kept wants: a block that arrives goes to the peers that asked for
// it, once; cancels, a full wantlist and age drop wants; and no peer can
// make the node keep more than keptPerPeer of them.
func TestLedgerKeepsWantsWithinBounds(t *testing.T) {
	l := ledger{byCID: map[cid.Cid]map[string]keptWant{}, perPeer: map[string]int{}}
	now := time.Now()
	a, b := testCID(t, 1), testCID(t, 2)
	l.keep(a, "p1", pb.Message_Wantlist_Block, now)
	l.keep(a, "p2", pb.Message_Wantlist_Have, now)
	l.keep(a, "p1", pb.Message_Wantlist_Block, now) // said again: still one
	l.keep(b, "p1", pb.Message_Wantlist_Block, now)
	if n := l.size(); n != 3 {
		t.Fatalf("kept %d wants, want 3", n)
	}
	got := l.take(a, now)
	if len(got) != 2 || got["p1"] != pb.Message_Wantlist_Block || got["p2"] != pb.Message_Wantlist_Have {
		t.Errorf("take(a) = %v", got)
	}
	if got := l.take(a, now); len(got) != 0 {
		t.Errorf("a second take(a) = %v, want nothing", got)
	}
	l.drop(b, "p1")
	if n := l.size(); n != 0 {
		t.Errorf("after cancel, %d wants kept", n)
	}

	for i := range keptPerPeer + 50 {
		l.keep(testCID(t, 100+i), "flood", pb.Message_Wantlist_Block, now)
	}
	l.keep(a, "quiet", pb.Message_Wantlist_Block, now)
	if n := l.perPeer["flood"]; n != keptPerPeer {
		t.Errorf("a flooding peer has %d wants kept, want the cap %d", n, keptPerPeer)
	}
	if got := l.take(a, now); len(got) != 1 {
		t.Errorf("another peer's want was not kept beside the flood: %v", got)
	}
	l.dropPeer("flood")
	if n := l.size(); n != 0 || len(l.byCID) != 0 {
		t.Errorf("after a full wantlist, %d wants (%d blocks) kept", n, len(l.byCID))
	}

	l.keep(a, "old", pb.Message_Wantlist_Block, now.Add(-keepFor))
	l.keep(b, "new", pb.Message_Wantlist_Block, now)
	if got := l.take(a, now); len(got) != 0 {
		t.Errorf("a want older than keepFor was served: %v", got)
	}
	l.keep(a, "old", pb.Message_Wantlist_Block, now.Add(-keepFor))
	l.expire(now)
	if n := l.size(); n != 1 {
		t.Errorf("after expiry, %d wants kept, want 1", n)
	}
}
