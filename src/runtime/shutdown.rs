//! The shutdown relay: a caller's shutdown future (which need only be `Send`) becomes a signal that can be waited
//! on any number of times and handed to kube's `Controller::graceful_shutdown_on` (which wants `Send + Sync`).
//! It spawns one task; nothing else.

use std::future::Future;

use tokio::sync::watch;

/// A shutdown that has happened or will; clone it to wait in several places.
#[derive(Clone, Debug)]
pub struct ShutdownSignal {
    receiver: watch::Receiver<bool>,
}

impl ShutdownSignal {
    /// Relays `shutdown`: the signal fires when it resolves (or when the relay task is dropped with the runtime).
    pub fn relay(shutdown: impl Future<Output = ()> + Send + 'static) -> Self {
        let (sender, receiver) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            sender.send_replace(true);
        });
        Self { receiver }
    }

    /// Whether shutdown was asked for.
    pub fn is_shutting_down(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves when shutdown is asked for.
    pub async fn wait(&mut self) {
        // An error means the relay is gone: the caller's future can no longer resolve, or the runtime stops.
        let _ = self.receiver.wait_for(|stop| *stop).await;
    }

    /// A future that resolves on shutdown, for `Controller::graceful_shutdown_on`.
    pub async fn stopped(mut self) {
        self.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_signal_fires_for_every_clone_once_the_future_resolves() {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let signal = ShutdownSignal::relay(async move {
            let _ = stopped.await;
        });
        let mut first = signal.clone();
        assert!(!first.is_shutting_down());
        let second = signal.stopped();
        let _ = stop.send(());
        first.wait().await;
        second.await;
        assert!(first.is_shutting_down());
    }
}
