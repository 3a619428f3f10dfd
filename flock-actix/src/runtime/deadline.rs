//! A call's deadline without a timer per call (issue #12).
//!
//! `tokio::time::timeout_at` registers a timer in the runtime's wheel on the
//! first poll of every call and removes it on drop, and while any timer is
//! registered every park of the runtime reads the clock. Most calls are
//! answered long before their deadline: a call to a bird on the caller's
//! own thread is answered by the time the caller is polled again. So
//! [`within`] arms no timer on the first poll: it asks to be polled again
//! (behind the tasks already queued, the callee among them) and arms the
//! timer only if the call is still pending then. The deadline is enforced
//! all the same; it is late by at most one turn of the caller's scheduler.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

/// The deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// `fut`, or [`Elapsed`] once `deadline` has passed.
pub(crate) fn within<F: Future + Unpin>(deadline: Instant, fut: F) -> Within<F> {
    Within {
        fut,
        deadline,
        timer: Timer::Unarmed,
    }
}

/// The future of [`within`].
pub(crate) struct Within<F> {
    fut: F,
    deadline: Instant,
    timer: Timer,
}

enum Timer {
    /// First poll not made yet.
    Unarmed,
    /// Polled once and asked to be polled again; no timer yet.
    Yielded,
    /// Still pending on the second poll: an ordinary timer. Boxed so that
    /// the common path (no timer) carries no `Sleep` in the call's future.
    Armed(Pin<Box<Sleep>>),
}

impl<F: Future + Unpin> Future for Within<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(out) = Pin::new(&mut this.fut).poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match &mut this.timer {
            Timer::Unarmed => {
                this.timer = Timer::Yielded;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Timer::Yielded => {
                if Instant::now() >= this.deadline {
                    return Poll::Ready(Err(Elapsed));
                }
                let mut sleep = Box::pin(tokio::time::sleep_until(this.deadline));
                let fired = sleep.as_mut().poll(cx).is_ready();
                this.timer = Timer::Armed(sleep);
                if fired {
                    Poll::Ready(Err(Elapsed))
                } else {
                    Poll::Pending
                }
            }
            Timer::Armed(sleep) => match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_future_that_never_finishes_times_out_at_its_deadline() {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(30);
        let out = within(deadline, std::future::pending::<()>()).await;
        assert_eq!(out, Err(Elapsed));
        assert!(Instant::now() >= deadline);
    }

    /// Polls `call` once by hand; whether it finished, and whether it armed
    /// a timer.
    fn poll_once<F: Future + Unpin>(call: &mut Within<F>) -> (bool, bool) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let done = Pin::new(&mut *call).poll(&mut cx).is_ready();
        (done, matches!(call.timer, Timer::Armed(_)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_answered_by_the_second_poll_never_arms_a_timer() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let mut call = within(Instant::now() + Duration::from_secs(5), rx);
        assert_eq!(poll_once(&mut call), (false, false));
        tx.send(1).unwrap();
        assert_eq!(poll_once(&mut call), (true, false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_still_pending_on_the_second_poll_arms_its_timer() {
        let (_tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let mut call = within(Instant::now() + Duration::from_secs(5), rx);
        assert_eq!(poll_once(&mut call), (false, false));
        assert_eq!(poll_once(&mut call), (false, true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_answered_by_another_task_wins() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let deadline = Instant::now() + Duration::from_millis(30);
        let call = within(deadline, rx);
        // Answered by a task queued before the caller's second poll.
        tokio::spawn(async move { tx.send(7).unwrap() });
        let out = call.await;
        assert_eq!(out.map(Result::unwrap), Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_after_the_deadline_is_not_taken() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let deadline = Instant::now() + Duration::from_millis(10);
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(1).is_err()
        });
        assert_eq!(within(deadline, rx).await.map(|_| ()), Err(Elapsed));
        assert!(late.await.unwrap(), "the receiver was dropped at the deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_already_passed_times_out_without_a_timer() {
        let deadline = Instant::now();
        tokio::time::advance(Duration::from_millis(1)).await;
        let out = within(deadline, std::future::pending::<()>()).await;
        assert_eq!(out, Err(Elapsed));
    }
}
