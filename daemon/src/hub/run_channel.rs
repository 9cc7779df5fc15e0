//! One run's live channel: a broadcast queue whose memory follows its
//! traffic. A subscription costs a few words until something is published;
//! a message is dropped once every subscriber has read it (or once
//! [`CAPACITY`] newer ones pushed it out, when the subscriber lags and
//! catches up from the store). tokio's broadcast channel allocates all of
//! its slots when it is created: 1024 slots cost about 74 KiB for each run a
//! browser merely watched.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Messages kept for a subscriber that has not read them yet.
pub const CAPACITY: usize = 1024;

/// Why [`Receiver::recv`] returned no message.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvError {
    /// This many messages were pushed out before they were read.
    Lagged(u64),
}

pub struct Channel<T> {
    queue: Mutex<Queue<T>>,
    published: Notify,
}

struct Queue<T> {
    /// Position of `items[0]` in the channel's whole history.
    base: u64,
    /// Each message with the number of subscribers yet to read it.
    items: VecDeque<(T, usize)>,
    receivers: usize,
}

/// A queue that grew for a burst gives its memory back once it is empty.
const SHRINK_ABOVE: usize = 64;

impl<T: Clone> Channel<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue {
                base: 0,
                items: VecDeque::new(),
                receivers: 0,
            }),
            published: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A subscriber that reads what is published from now on.
    pub fn subscribe(self: &Arc<Self>) -> Receiver<T> {
        let mut queue = self.lock();
        queue.receivers += 1;
        let position = queue.base + queue.items.len() as u64;
        Receiver {
            channel: Arc::clone(self),
            position,
        }
    }

    pub fn receivers(&self) -> usize {
        self.lock().receivers
    }

    /// Queues `message` for every current subscriber; with none it is
    /// dropped at once.
    pub fn publish(&self, message: T) {
        {
            let mut queue = self.lock();
            if queue.receivers == 0 {
                return;
            }
            let readers = queue.receivers;
            queue.items.push_back((message, readers));
            if queue.items.len() > CAPACITY {
                queue.items.pop_front();
                queue.base += 1;
            }
        }
        self.published.notify_waiters();
    }

    /// Messages held (for tests and memory accounting).
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let queue = self.lock();
        (queue.items.len(), queue.items.capacity())
    }
}

impl<T> Queue<T> {
    /// Drops the messages at the front that every subscriber has read.
    fn trim(&mut self) {
        while self.items.front().is_some_and(|(_, unread)| *unread == 0) {
            self.items.pop_front();
            self.base += 1;
        }
        if self.items.is_empty() && self.items.capacity() > SHRINK_ABOVE {
            self.items = VecDeque::new();
        }
    }
}

pub struct Receiver<T> {
    channel: Arc<Channel<T>>,
    /// The next message's position in the channel's history.
    position: u64,
}

impl<T: Clone> Receiver<T> {
    /// The next message, waiting for one; `Lagged` once when messages were
    /// lost, after which reading goes on with the oldest one still held.
    pub async fn recv(&mut self) -> Result<T, RecvError> {
        loop {
            let published = self.channel.published.notified();
            tokio::pin!(published);
            // Registered before looking, so a publish in between wakes us.
            published.as_mut().enable();
            {
                let mut queue = self.channel.lock();
                if self.position < queue.base {
                    let lost = queue.base - self.position;
                    self.position = queue.base;
                    return Err(RecvError::Lagged(lost));
                }
                let index = (self.position - queue.base) as usize;
                if let Some((message, unread)) = queue.items.get_mut(index) {
                    let message = message.clone();
                    *unread = unread.saturating_sub(1);
                    self.position += 1;
                    queue.trim();
                    return Ok(message);
                }
            }
            published.await;
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut queue = self.channel.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.receivers = queue.receivers.saturating_sub(1);
        let start = self.position.saturating_sub(queue.base) as usize;
        for (_, unread) in queue.items.iter_mut().skip(start) {
            *unread = unread.saturating_sub(1);
        }
        queue.trim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_reads_every_message_in_order() {
        let channel = Channel::new();
        let mut a = channel.subscribe();
        let mut b = channel.subscribe();
        for i in 0..10 {
            channel.publish(i);
        }
        for i in 0..10 {
            assert_eq!(a.recv().await, Ok(i));
        }
        assert_eq!(channel.held().0, 10, "b has read nothing yet");
        for i in 0..10 {
            assert_eq!(b.recv().await, Ok(i));
        }
        assert_eq!(channel.held().0, 0, "read by all: dropped");
    }

    #[test]
    fn an_idle_subscription_allocates_nothing() {
        let channel = Channel::<u64>::new();
        let _r = channel.subscribe();
        assert_eq!(channel.held(), (0, 0));
    }

    #[test]
    fn without_subscribers_nothing_is_kept() {
        let channel = Channel::new();
        channel.publish(1);
        assert_eq!(channel.held().0, 0);
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_and_goes_on_with_the_oldest_held() {
        let channel = Channel::new();
        let mut slow = channel.subscribe();
        for i in 0..(CAPACITY as u64 + 5) {
            channel.publish(i);
        }
        assert_eq!(slow.recv().await, Err(RecvError::Lagged(5)));
        assert_eq!(slow.recv().await, Ok(5));
        assert_eq!(channel.held().0, CAPACITY - 1);
    }

    #[tokio::test]
    async fn a_dropped_subscriber_releases_what_it_did_not_read() {
        let channel = Channel::new();
        let mut reader = channel.subscribe();
        let gone = channel.subscribe();
        for i in 0..100 {
            channel.publish(i);
        }
        for i in 0..100 {
            assert_eq!(reader.recv().await, Ok(i));
        }
        assert_eq!(channel.held().0, 100);
        drop(gone);
        assert_eq!(channel.held(), (0, 0), "memory given back");
        assert_eq!(channel.receivers(), 1);
    }

    #[tokio::test]
    async fn a_waiting_subscriber_wakes_on_publish() {
        let channel = Channel::new();
        let mut r = channel.subscribe();
        let waiting = tokio::spawn(async move { r.recv().await });
        tokio::task::yield_now().await;
        channel.publish(7);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("task");
        assert_eq!(got, Ok(7));
    }

    #[tokio::test]
    async fn a_late_subscriber_sees_only_later_messages() {
        let channel = Channel::new();
        let _early = channel.subscribe();
        channel.publish(1);
        let mut late = channel.subscribe();
        channel.publish(2);
        assert_eq!(late.recv().await, Ok(2));
    }
}
