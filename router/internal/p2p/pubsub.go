package p2p

import (
	"context"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
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

// Validate has fn judge every message on topic before gossipsub passes it
// on or delivers it; unregister ends that. One validator per topic. fn runs
// inline in the one validation worker, so messages are judged one at a
// time in the order they came (as the worker's comment in New says, each
// author's order matters).
func (n *Node) Validate(topic string, fn pubsub.ValidatorEx) (unregister func(), err error) {
	if err := n.PubSub.RegisterTopicValidator(topic, fn, pubsub.WithValidatorTimeout(validateTimeout), pubsub.WithValidatorInline(true)); err != nil {
		return nil, fmt.Errorf("validate topic %s: %w", topic, err)
	}
	return func() { n.PubSub.UnregisterTopicValidator(topic) }, nil
}

// validateTimeout bounds how long a message waits for its validator.
const validateTimeout = 2 * time.Second
