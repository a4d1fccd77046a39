package mqtt

import (
	"context"
	"iter"
)

// All returns an iterator over the subscription's messages for use with
// range:
//
//	for m := range sub.All(ctx) {
//		handle(m)
//	}
//
// The loop ends when ctx is done or the subscription ends (Unsubscribe, or
// the client stopped); check ctx.Err() and Client.Err() afterwards to tell
// which. Each message is taken from the channel when the loop asks for it,
// exactly as a receive from Messages would (so at QoS 1 and 2 the
// acknowledgement follows it). Breaking out of the loop leaves the
// subscription as it is.
func (s *Subscription) All(ctx context.Context) iter.Seq[Message] {
	return allMessages(ctx, s.Messages())
}

// All returns an iterator over Messages, the messages that match no
// subscription channel; see Subscription.All.
func (c *Client) All(ctx context.Context) iter.Seq[Message] {
	return allMessages(ctx, c.Messages())
}

func allMessages(ctx context.Context, ch <-chan Message) iter.Seq[Message] {
	return func(yield func(Message) bool) {
		for {
			select {
			case m, ok := <-ch:
				if !ok || !yield(m) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}
}
