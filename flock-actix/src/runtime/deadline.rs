//! A call's deadline without a timer per call (issue #12).
//!
//! `tokio::time::timeout_at` registers a timer in the runtime's wheel on the
//! first poll of every call and removes it on drop, and while any timer is
//! registered every park of the runtime reads the clock. Most calls are
//! answered long before their deadline: a call to a bird on the caller's
//! own thread is answered by the time the caller is polled again. So
//! [`within`] can arm no timer on the first poll ([`FirstPoll::Yield`]): it
//! asks to be polled again (behind the tasks already queued, the callee
//! among them) and arms the timer only if the call is still pending then.
//! The deadline is enforced all the same; it is late by at most one turn
//! of the caller's scheduler. A call that crosses threads is never answered
//! that soon, and the extra turn costs it more than the timer (the runtime
//! polls its I/O driver before it runs a task that woke itself), so such
//! calls arm at once ([`FirstPoll::Arm`]); [`Quick`] remembers which kind a
//! route's calls are.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// What the first poll of a call that is not answered yet does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstPoll {
    /// Asks to be polled again, and arms the timer only then.
    Yield,
    /// Arms the timer.
    Arm,
}

/// A call's deadline: `after` past `from`. Kept as the two and added up
/// only when a timer is armed or the deadline checked, which a call
/// answered by its second poll never needs (the sum, with its overflow
/// checks, is tens of instructions of a local call; issue #12).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Due {
    from: Instant,
    after: Duration,
}

impl Due {
    /// `after` past `from`.
    pub(crate) fn after(from: Instant, after: Duration) -> Self {
        Due { from, after }
    }

    /// At `deadline`.
    pub(crate) fn at(deadline: Instant) -> Self {
        Due {
            from: deadline,
            after: Duration::ZERO,
        }
    }

    /// The deadline.
    pub(crate) fn instant(self) -> Instant {
        deadline_after(self.from, self.after)
    }
}

/// `now + timeout`, or about a century from now for timeouts so long that
/// the sum would overflow (`Duration::MAX` means "no deadline", not a panic).
pub(crate) fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(timeout.min(CENTURY)).unwrap_or(now)
}

/// `fut`, or [`Elapsed`] once `due` has passed.
pub(crate) fn within<F: Future + Unpin>(due: Due, fut: F, first: FirstPoll) -> Within<F> {
    Within {
        fut,
        due,
        first,
        timer: Timer::Unarmed,
    }
}

/// The future of [`within`].
pub(crate) struct Within<F> {
    fut: F,
    due: Due,
    first: FirstPoll,
    timer: Timer,
}

impl<F> Within<F> {
    /// Whether it had to arm a timer (the call was not answered by its
    /// second poll).
    pub(crate) fn armed(&self) -> bool {
        matches!(self.timer, Timer::Armed(_))
    }
}

/// Per route: the caller thread whose calls were last answered without a
/// timer, so that only its calls yield first. Unknown at first: the first
/// call yields, and learns.
pub(crate) struct Quick(AtomicU64);

const UNKNOWN: u64 = u64::MAX;
const NONE: u64 = 0;

impl Default for Quick {
    fn default() -> Self {
        Quick(AtomicU64::new(UNKNOWN))
    }
}

impl Quick {
    /// What the first poll of a call from `caller` does.
    pub(crate) fn first_poll(&self, caller: Caller) -> FirstPoll {
        match self.0.load(Ordering::Relaxed) {
            UNKNOWN => FirstPoll::Yield,
            t if t == caller.key => FirstPoll::Yield,
            _ => FirstPoll::Arm,
        }
    }

    /// Learns from a finished call of `caller` whether calls from its
    /// thread are answered without a timer.
    pub(crate) fn learn(&self, caller: Caller, first: FirstPoll, armed: bool) {
        let learned = match (first, armed) {
            (FirstPoll::Yield, false) => caller.key,
            (FirstPoll::Yield, true) => NONE,
            // Armed at once: nothing learned (the answer may have come
            // soon, but the timer was already paid for).
            (FirstPoll::Arm, _) => return,
        };
        if self.0.load(Ordering::Relaxed) != learned {
            self.0.store(learned, Ordering::Relaxed);
        }
    }

    /// Forgets what it learned (the route now leads to another instance,
    /// which may run on another thread).
    pub(crate) fn forget(&self) {
        self.0.store(UNKNOWN, Ordering::Relaxed);
    }
}

/// The thread making a call, and the call's number: what a local call
/// needs of its thread, read with one thread-local access (issue #12).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    /// A small number naming the thread (never [`NONE`] or [`UNKNOWN`]).
    key: u64,
    /// The thread's count of calls, this one included.
    call: u64,
}

impl Caller {
    /// The current thread, for a new call.
    pub(crate) fn next() -> Caller {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            // Const-initialized: no lazy-init check on each access; the
            // key is taken on the thread's first call (0: none yet).
            static THIS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        THIS.with(|this| {
            let (mut key, call) = this.get();
            if key == NONE {
                key = NEXT.fetch_add(1, Ordering::Relaxed);
            }
            let call = call.wrapping_add(1);
            this.set((key, call));
            Caller { key, call }
        })
    }

    /// The call's number: the thread's key and the low 40 bits of its
    /// count of calls. Unique among the calls of the last 30 s (a thread
    /// makes far fewer than 2^40 calls in that time) unless 2^24 threads
    /// have made calls since, which a process does not.
    pub(crate) fn ticket(self) -> u64 {
        const CALL_BITS: u32 = 40;
        self.key.wrapping_shl(CALL_BITS) | (self.call & ((1 << CALL_BITS) - 1))
    }
}

enum Timer {
    /// First poll not made yet (or made, with [`FirstPoll::Arm`], and
    /// answered at once).
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
            Timer::Unarmed if this.first == FirstPoll::Yield => {
                this.timer = Timer::Yielded;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Timer::Unarmed | Timer::Yielded => {
                let deadline = this.due.instant();
                if Instant::now() >= deadline {
                    return Poll::Ready(Err(Elapsed));
                }
                let mut sleep = Box::pin(tokio::time::sleep_until(deadline));
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

    #[tokio::test(start_paused = true)]
    async fn a_future_that_never_finishes_times_out_at_its_deadline() {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(30);
        let out = within(
            Due::at(deadline),
            std::future::pending::<()>(),
            FirstPoll::Yield,
        )
        .await;
        assert_eq!(out, Err(Elapsed));
        assert!(Instant::now() >= deadline);
    }

    /// Polls `call` once by hand; whether it finished, and whether it armed
    /// a timer.
    fn poll_once<F: Future + Unpin>(call: &mut Within<F>) -> (bool, bool) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let done = Pin::new(&mut *call).poll(&mut cx).is_ready();
        (done, call.armed())
    }

    /// A call waiting on a oneshot, with 5 s to go.
    fn call_on(
        rx: tokio::sync::oneshot::Receiver<u8>,
        first: FirstPoll,
    ) -> Within<tokio::sync::oneshot::Receiver<u8>> {
        within(
            Due::after(Instant::now(), Duration::from_secs(5)),
            rx,
            first,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_answered_by_the_second_poll_never_arms_a_timer() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let mut call = call_on(rx, FirstPoll::Yield);
        assert_eq!(poll_once(&mut call), (false, false));
        tx.send(1).unwrap();
        assert_eq!(poll_once(&mut call), (true, false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_still_pending_on_the_second_poll_arms_its_timer() {
        let (_tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let mut call = call_on(rx, FirstPoll::Yield);
        assert_eq!(poll_once(&mut call), (false, false));
        assert_eq!(poll_once(&mut call), (false, true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_told_to_arm_arms_on_its_first_poll() {
        let (_tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let mut call = call_on(rx, FirstPoll::Arm);
        assert_eq!(poll_once(&mut call), (false, true));
    }

    #[test]
    fn a_route_yields_first_only_for_the_thread_its_calls_were_quick_on() {
        let quick = Quick::default();
        let me = Caller::next();
        assert_eq!(quick.first_poll(me), FirstPoll::Yield, "unknown: try");
        quick.learn(me, FirstPoll::Yield, false);
        assert_eq!(quick.first_poll(Caller::next()), FirstPoll::Yield);
        let other =
            std::thread::scope(|s| s.spawn(|| quick.first_poll(Caller::next())).join().unwrap());
        assert_eq!(other, FirstPoll::Arm, "quick on another thread only");
        quick.learn(me, FirstPoll::Yield, true);
        assert_eq!(
            quick.first_poll(me),
            FirstPoll::Arm,
            "needed a timer: arm at once"
        );
        quick.learn(me, FirstPoll::Arm, false);
        assert_eq!(
            quick.first_poll(me),
            FirstPoll::Arm,
            "an armed call teaches nothing"
        );
        quick.forget();
        assert_eq!(
            quick.first_poll(me),
            FirstPoll::Yield,
            "another instance: try again"
        );
    }

    #[test]
    fn calls_are_numbered_uniquely_across_threads() {
        let mine = [Caller::next().ticket(), Caller::next().ticket()];
        let theirs = std::thread::scope(|s| {
            s.spawn(|| [Caller::next().ticket(), Caller::next().ticket()])
                .join()
                .unwrap()
        });
        let all: std::collections::BTreeSet<_> = mine.iter().chain(&theirs).collect();
        assert_eq!(all.len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_answered_by_another_task_wins() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let deadline = Instant::now() + Duration::from_millis(30);
        let call = within(Due::at(deadline), rx, FirstPoll::Yield);
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
        assert_eq!(
            within(Due::at(deadline), rx, FirstPoll::Arm)
                .await
                .map(|_| ()),
            Err(Elapsed)
        );
        assert!(
            late.await.unwrap(),
            "the receiver was dropped at the deadline"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_already_passed_times_out_without_a_timer() {
        let deadline = Instant::now();
        tokio::time::advance(Duration::from_millis(1)).await;
        let out = within(
            Due::at(deadline),
            std::future::pending::<()>(),
            FirstPoll::Yield,
        )
        .await;
        assert_eq!(out, Err(Elapsed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_added_up_late_still_counts_from_the_calls_start() {
        let start = Instant::now();
        let mut call = within(
            Due::after(start, Duration::from_millis(10)),
            std::future::pending::<()>(),
            FirstPoll::Yield,
        );
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut call).poll(&mut cx).is_pending());
        // A long turn before the second poll: the deadline passed in it.
        tokio::time::advance(Duration::from_millis(20)).await;
        assert_eq!(Pin::new(&mut call).poll(&mut cx), Poll::Ready(Err(Elapsed)));
    }

    #[test]
    fn a_timeout_too_long_to_add_is_about_a_century() {
        let now = Instant::now();
        let due = Due::after(now, Duration::MAX).instant();
        assert!(due > now + Duration::from_secs(99 * 365 * 24 * 3600));
    }
}
