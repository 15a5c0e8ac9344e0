package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// pubsubQueue bounds gossipsub's queues and each subscription's buffer.
const pubsubQueue = 4096

// topicRef shares one joined topic between every plugin that uses it.
type topicRef struct {
	topic *pubsub.Topic
	refs  int
}

func (n *Node) joinLocked(name string) (*topicRef, error) {
	if t, ok := n.topics[name]; ok {
		return t, nil
	}
	t, err := n.PubSub.Join(name)
	if err != nil {
		return nil, fmt.Errorf("join topic %s: %w", name, err)
	}
	ref := &topicRef{topic: t}
	n.topics[name] = ref
	return ref, nil
}

// Publish sends data on topic, joining it if nobody here has.
func (n *Node) Publish(ctx context.Context, topic string, data []byte) error {
	n.mu.Lock()
	ref, err := n.joinLocked(topic)
	n.mu.Unlock()
	if err != nil {
		return err
	}
	return ref.topic.Publish(ctx, data)
}

// Subscribe subscribes to topic; cancel ends the subscription.
func (n *Node) Subscribe(topic string) (sub *pubsub.Subscription, cancel func(), err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ref, err := n.joinLocked(topic)
	if err != nil {
		return nil, nil, err
	}
	sub, err = ref.topic.Subscribe(pubsub.WithBufferSize(pubsubQueue))
	if err != nil {
		return nil, nil, fmt.Errorf("subscribe %s: %w", topic, err)
	}
	ref.refs++
	return sub, func() {
		sub.Cancel()
		n.mu.Lock()
		defer n.mu.Unlock()
		ref.refs--
		if ref.refs == 0 {
			// Close fails while someone else holds a handler or relay on
			// the topic; then it stays joined, which is harmless.
			if err := ref.topic.Close(); err == nil {
				delete(n.topics, topic)
			}
		}
	}, nil
}

// ClaimProtocol records that plugin handles protocol. Two plugins cannot
// handle one protocol.
func (n *Node) ClaimProtocol(protocol, plugin string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if owner, ok := n.handlers[protocol]; ok && owner != plugin {
		return fmt.Errorf("protocol %s is already handled by plugin %s", protocol, owner)
	}
	n.handlers[protocol] = plugin
	return nil
}

// ReleaseProtocol undoes ClaimProtocol.
func (n *Node) ReleaseProtocol(protocol string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.handlers, protocol)
}

// Validate has fn, plugin owner's, judge every message on topic before
// gossipsub passes it on or delivers it, and keeps this node subscribed to
// topic meanwhile; unregister ends that. One validator per topic. fn runs
// inline in the one validation worker, so messages are judged one at a
// time in the order they came (as the worker's comment in New says, each
// author's order matters).
//
// arrive, if not nil, is handed each message on topic from a peer as it
// arrives, in that same order, while the message still waits in
// gossipsub's queue for fn: a validator can then start on several messages
// at once and have its verdicts ready when the worker asks. It runs in
// gossipsub's event loop, so it must not block. It sees messages gossipsub
// may yet drop without asking fn: duplicates, and any whose envelope
// signature does not verify (see inspect).
//
// After unregister the topic stays joined, and validated, for
// validatorGrace: a plugin that crashed is back within a fraction of a
// second, and leaving the topic would have the peers prune this node from
// their meshes for gossipsub's backoff, a minute in which messages only
// come when asked for, a heartbeat late. Meanwhile the first message waits
// for the plugin (within the 2 s a verdict may take), and if it does not
// come back by then, messages are ignored until it does: none passes
// unjudged. If owner validates topic again within the grace, it takes
// over.
func (n *Node) Validate(topic, owner string, fn pubsub.ValidatorEx, arrive func(*pubsub.Message)) (unregister func(), err error) {
	n.valMu.Lock()
	defer n.valMu.Unlock()
	v := n.validations[topic]
	if v == nil {
		v = &validation{owner: owner, back: make(chan struct{})}
		if err := n.PubSub.RegisterTopicValidator(topic, v.judge, pubsub.WithValidatorTimeout(validateTimeout), pubsub.WithValidatorInline(true)); err != nil {
			return nil, fmt.Errorf("validate topic %s: %w", topic, err)
		}
		sub, cancel, err := n.Subscribe(topic)
		if err != nil {
			n.PubSub.UnregisterTopicValidator(topic)
			return nil, err
		}
		// The validator has had every message: the subscription only keeps
		// this node in the topic's mesh, and its deliveries are dropped.
		ctx, stop := context.WithCancel(context.Background())
		go func() {
			for {
				if _, err := sub.Next(ctx); err != nil {
					return
				}
			}
		}()
		v.leave = func() { stop(); cancel() }
		n.validations[topic] = v
	}
	if err := v.attach(owner, fn); err != nil {
		return nil, fmt.Errorf("validate topic %s: %w", topic, err)
	}
	if arrive != nil {
		n.arriveMu.Lock()
		n.arrivals[topic] = arrive
		n.arriveMu.Unlock()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			n.arriveMu.Lock()
			delete(n.arrivals, topic)
			n.arriveMu.Unlock()
			v.detach(func() { n.dropValidation(topic, v) })
		})
	}, nil
}

// validatorGrace is how long a topic stays joined, and validated, after its
// validating plugin went away (Validate).
const validatorGrace = time.Minute

// validation is a topic's validator, which outlives one plugin process.
type validation struct {
	owner string
	leave func() // ends the node's subscription

	mu      sync.Mutex
	fn      pubsub.ValidatorEx // the plugin's; nil while it is away
	back    chan struct{}      // closed when a plugin takes over
	waited  bool               // a message waited in vain for this absence
	release *time.Timer
}

func (v *validation) attach(owner string, fn pubsub.ValidatorEx) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case owner != v.owner:
		return fmt.Errorf("plugin %s validates it already", v.owner)
	case v.fn != nil:
		return errors.New("it has a validator already")
	}
	if v.release != nil {
		v.release.Stop()
		v.release = nil
	}
	v.fn, v.waited = fn, false
	close(v.back)
	return nil
}

func (v *validation) detach(drop func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.fn, v.waited, v.back = nil, false, make(chan struct{})
	v.release = time.AfterFunc(validatorGrace, drop)
}

// judge is the topic's validator: the plugin's, or, while it is away, a
// wait for it.
func (v *validation) judge(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	v.mu.Lock()
	fn, back, waited := v.fn, v.back, v.waited
	if fn == nil {
		v.waited = true
	}
	v.mu.Unlock()
	if fn == nil {
		if waited {
			return pubsub.ValidationIgnore
		}
		select {
		case <-back:
		case <-ctx.Done():
			return pubsub.ValidationIgnore
		}
		v.mu.Lock()
		fn = v.fn
		v.mu.Unlock()
		if fn == nil {
			return pubsub.ValidationIgnore
		}
	}
	return fn(ctx, from, m)
}

// dropValidation ends a topic's validation once its grace is over with no
// plugin back.
func (n *Node) dropValidation(topic string, v *validation) {
	n.valMu.Lock()
	defer n.valMu.Unlock()
	v.mu.Lock()
	gone := v.fn == nil && n.validations[topic] == v
	v.mu.Unlock()
	if !gone {
		return
	}
	delete(n.validations, topic)
	n.PubSub.UnregisterTopicValidator(topic)
	v.leave()
}

// inspect hands the messages of each RPC from a peer to their topic's
// arrive function, if it has one, in the order the peer sent them. It runs
// in gossipsub's event loop before gossipsub looks at the messages, so it
// repeats the cheap checks gossipsub makes before it queues a message for
// validation: signed (this node's policy is strict signing) and not
// claiming to come from this node. The envelope's signature itself is
// checked by the validation worker, later. Peer scoring is off here, so
// gossipsub takes every peer's messages; with it on, a graylisted peer's
// would have to be left out too.
//
// It also puts each author's messages in an RPC back in the order the
// author published them (gossipsub's seqno counts up per publisher): a
// peer answers IWANT, the messages a node missed, in the order of a Go map,
// and a chat room shows an author's messages in the order they came (and
// refuses one older than the author's last few, as a replay).
func (n *Node) inspect(from peer.ID, rpc *pubsub.RPC) error {
	msgs := rpc.GetPublish()
	if len(msgs) == 0 {
		return nil
	}
	if len(msgs) > 1 {
		slices.SortStableFunc(msgs, func(a, b *pb.Message) int {
			if c := bytes.Compare(a.From, b.From); c != 0 {
				return c
			}
			return bytes.Compare(a.Seqno, b.Seqno)
		})
	}
	n.arriveMu.RLock()
	defer n.arriveMu.RUnlock()
	if len(n.arrivals) == 0 {
		return nil
	}
	self := n.Host.ID()
	for _, pm := range msgs {
		arrive := n.arrivals[pm.GetTopic()]
		if arrive == nil || pm.Signature == nil || peer.ID(pm.From) == self {
			continue
		}
		arrive(&pubsub.Message{Message: pm, ReceivedFrom: from})
	}
	return nil
}

// validateTimeout bounds how long a message waits for its validator.
const validateTimeout = 2 * time.Second
