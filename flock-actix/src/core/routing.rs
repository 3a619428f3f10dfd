//! What a `Moved` answer leads to, on both ends of a call.
//!
//! While a bird moves, the nodes' views disagree for a moment: the old
//! owner already handed the bird to the new one, but a caller still places
//! it on the old owner. Answering `Moved` and letting the caller retry
//! against its own view made the caller wait until its view caught up —
//! in a rolling restart, until it had linked to the node that just joined
//! (about 130 ms of doubling retries for the slowest calls). Two rules
//! close that window:
//!
//! - the node that answers `Moved` for a call from another node passes the
//!   call on to the owner its (newer) view names, once ([`on_moved`]);
//! - a caller that gets `Moved` naming a node it can reach sends its next
//!   attempt there at once, at most [`MAX_REDIRECTS`] times in a row, then
//!   falls back to its own view with a backoff ([`after_moved`]), so two
//!   nodes whose views disagree cannot bounce a call between them.
//!
//! Pure: the runtime's Registry and `FlockAddr` ask and act.

/// How many `Moved` answers in a row a caller follows before it falls back
/// to its own view and a backoff.
pub const MAX_REDIRECTS: u32 = 2;

/// What the node that found a call's bird gone does with the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnMoved {
    /// Pass it on to the owner, marked forwarded; relay its reply.
    Forward,
    /// Answer `Moved` to the caller.
    Answer,
}

/// The facts the answering node decides on.
#[derive(Debug, Clone, Copy)]
pub struct Answering<'a> {
    /// The new owner its view names.
    pub owner: &'a str,
    /// This node.
    pub me: &'a str,
    /// The call came over a link (a caller on this node retries itself).
    pub remote: bool,
    /// The call was already forwarded once.
    pub forwarded: bool,
    /// This node leaves or stops: a reply relayed through it could be
    /// lost when it goes, and the caller can follow `Moved` itself.
    pub leaving: bool,
    /// This node has a link up to `owner`.
    pub linked: bool,
}

/// Forward once, from a node that stays, to a linked owner other than
/// itself; answer otherwise.
pub fn on_moved(a: Answering<'_>) -> OnMoved {
    if a.remote && !a.forwarded && !a.leaving && a.linked && a.owner != a.me {
        OnMoved::Forward
    } else {
        OnMoved::Answer
    }
}

/// What a caller does after a `Moved` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Try this node at once.
    Redirect(String),
    /// Wait (the backoff), then try the owner in its own view.
    Backoff,
}

/// The facts the caller decides on.
#[derive(Debug, Clone, Copy)]
pub struct Calling<'a> {
    /// The owner the `Moved` answer named.
    pub named: &'a str,
    /// The node that answered.
    pub tried: &'a str,
    /// The calling node.
    pub me: &'a str,
    /// The caller has a link up to `named` (or `named` is itself).
    pub reachable: bool,
    /// Redirects followed in a row so far.
    pub redirects: u32,
}

/// Follow a redirect to a reachable node other than the one that answered,
/// a bounded number of times in a row.
pub fn after_moved(c: Calling<'_>) -> Next {
    let reachable = c.reachable || c.named == c.me;
    if c.named != c.tried && !c.named.is_empty() && reachable && c.redirects < MAX_REDIRECTS {
        Next::Redirect(c.named.to_owned())
    } else {
        Next::Backoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answering(owner: &str) -> Answering<'_> {
        Answering {
            owner,
            me: "b",
            remote: true,
            forwarded: false,
            leaving: false,
            linked: true,
        }
    }

    #[test]
    fn the_answering_node_forwards_only_once_from_a_node_that_stays_to_a_linked_owner() {
        let forward = OnMoved::Forward;
        let cases: Vec<(&str, Answering<'_>, OnMoved)> = vec![
            ("a remote call, the owner linked", answering("c"), forward),
            (
                "already forwarded once",
                Answering {
                    forwarded: true,
                    ..answering("c")
                },
                OnMoved::Answer,
            ),
            (
                "this node is leaving",
                Answering {
                    leaving: true,
                    ..answering("c")
                },
                OnMoved::Answer,
            ),
            (
                "no link to the owner",
                Answering {
                    linked: false,
                    ..answering("c")
                },
                OnMoved::Answer,
            ),
            (
                "a caller on this node retries itself",
                Answering {
                    remote: false,
                    ..answering("c")
                },
                OnMoved::Answer,
            ),
            ("the view names this node", answering("b"), OnMoved::Answer),
        ];
        for (what, facts, want) in cases {
            assert_eq!(on_moved(facts), want, "{what}");
        }
    }

    fn calling(named: &str) -> Calling<'_> {
        Calling {
            named,
            tried: "b",
            me: "client",
            reachable: true,
            redirects: 0,
        }
    }

    #[test]
    fn a_caller_follows_a_redirect_to_a_reachable_node_a_bounded_number_of_times() {
        let to_c = Next::Redirect("c".into());
        let cases: Vec<(&str, Calling<'_>, Next)> = vec![
            ("a reachable new owner", calling("c"), to_c.clone()),
            (
                "the second in a row",
                Calling {
                    redirects: 1,
                    ..calling("c")
                },
                to_c,
            ),
            (
                "past the bound",
                Calling {
                    redirects: MAX_REDIRECTS,
                    ..calling("c")
                },
                Next::Backoff,
            ),
            (
                "not linked to it yet",
                Calling {
                    reachable: false,
                    ..calling("c")
                },
                Next::Backoff,
            ),
            (
                "the caller itself, linked or not",
                Calling {
                    reachable: false,
                    ..calling("client")
                },
                Next::Redirect("client".into()),
            ),
            ("the node that answered", calling("b"), Next::Backoff),
            ("no owner named", calling(""), Next::Backoff),
        ];
        for (what, facts, want) in cases {
            assert_eq!(after_moved(facts), want, "{what}");
        }
    }

    /// Two nodes that each name the other cannot keep a call between them:
    /// whatever they answer, a caller redirects at most `MAX_REDIRECTS`
    /// times in a row before it backs off.
    #[test]
    fn redirects_in_a_row_are_bounded_whatever_the_answers() {
        let mut redirects = 0;
        let mut tried = "a".to_owned();
        let mut followed = 0;
        for _ in 0..10 {
            let named = if tried == "a" { "b" } else { "a" };
            match after_moved(Calling {
                named,
                tried: &tried,
                me: "client",
                reachable: true,
                redirects,
            }) {
                Next::Redirect(n) => {
                    redirects += 1;
                    followed += 1;
                    tried = n;
                }
                Next::Backoff => break,
            }
        }
        assert_eq!(followed, MAX_REDIRECTS);
    }
}
