use super::*;
use proptest::prelude::*;

fn info(name: &str, incarnation: u64) -> NodeInfo {
    NodeInfo {
        id: ReplicaId {
            node: name.into(),
            incarnation,
        },
        addr: format!("{name}:4000"),
        weight: 1,
    }
}

fn node(seeds: &[&str]) -> Membership {
    Membership::new(
        MembershipConfig::default(),
        info("me", 1),
        seeds.iter().map(|s| s.to_string()),
    )
    .unwrap()
}

fn view_names(m: &Membership) -> Vec<String> {
    let mut v: Vec<String> = m.view().into_iter().map(|m| m.name.to_string()).collect();
    v.sort();
    v
}

#[test]
fn invalid_timings_are_rejected() {
    let bad = MembershipConfig {
        heartbeat_ms: 500,
        down_after_ms: 600,
        ..MembershipConfig::default()
    };
    assert!(matches!(bad.validate(), Err(Error::InvalidConfig(_))));
    let bad = MembershipConfig {
        reconnect_min_ms: 0,
        ..MembershipConfig::default()
    };
    assert!(matches!(bad.validate(), Err(Error::InvalidConfig(_))));
    assert_eq!(MembershipConfig::default().validate(), Ok(()));
}

#[test]
fn seeds_are_dialled_once_until_the_dial_is_reported() {
    let mut m = node(&["a:4000", "me:4000"]);
    // Our own address is not a seed.
    assert_eq!(m.tick(0), vec![Effect::Dial("a:4000".into())]);
    assert_eq!(m.tick(50), vec![]);
    m.dial_failed("a:4000", 100);
    assert_eq!(m.tick(150), vec![]);
    assert_eq!(m.tick(200), vec![Effect::Dial("a:4000".into())]);
}

#[test]
fn a_new_link_adds_the_peer_to_the_view() {
    let mut m = node(&[]);
    assert_eq!(view_names(&m), ["me"]);
    let (joined, effects) = m.link_up(info("a", 1), 0);
    assert_eq!(joined, Joined::New);
    assert_eq!(effects, vec![Effect::ViewChanged]);
    assert_eq!(view_names(&m), ["a", "me"]);
}

#[test]
fn heartbeats_are_sent_every_interval() {
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    assert_eq!(m.tick(100), vec![]);
    assert_eq!(m.tick(200), vec![Effect::Heartbeat("a".into())]);
    m.heard_from("a", 250);
    assert_eq!(m.tick(300), vec![]);
    assert_eq!(m.tick(400), vec![Effect::Heartbeat("a".into())]);
}

#[test]
fn a_silent_peer_is_declared_down_within_the_bound() {
    let config = MembershipConfig::default();
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    m.heard_from("a", 0);
    let mut t = 0;
    let mut closed_at = None;
    while t <= 5_000 {
        if m.tick(t).contains(&Effect::Close("a".into())) {
            closed_at = Some(t);
            break;
        }
        t += config.heartbeat_ms;
    }
    let closed_at = closed_at.expect("silent peer closed");
    assert!(closed_at > config.down_after_ms);
    assert!(closed_at <= config.down_after_ms + config.heartbeat_ms);
    assert!(closed_at <= 1_500, "the brief's bound with defaults");
    assert_eq!(m.status("a"), Some(PeerStatus::Down));
    assert_eq!(view_names(&m), ["me"]);
}

#[test]
fn a_closed_link_takes_the_peer_out_of_the_view_at_once() {
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    assert_eq!(m.link_down("a", 10), vec![Effect::ViewChanged]);
    assert_eq!(view_names(&m), ["me"]);
    // A second report of the same loss changes nothing.
    assert_eq!(m.link_down("a", 11), vec![]);
}

#[test]
fn a_lost_peer_is_redialled_with_doubling_backoff() {
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    m.link_down("a", 0);
    let dial = Effect::Dial("a:4000".into());
    assert_eq!(m.tick(99), vec![]);
    assert_eq!(m.tick(100), vec![dial.clone()]);
    m.dial_failed("a:4000", 100); // next at 200, backoff 200
    assert_eq!(m.tick(199), vec![]);
    assert_eq!(m.tick(200), vec![dial.clone()]);
    m.dial_failed("a:4000", 200); // next at 400, backoff 400
    assert_eq!(m.tick(399), vec![]);
    assert_eq!(m.tick(400), vec![dial]);
}

#[test]
fn gossip_makes_unknown_nodes_dialled() {
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    m.gossip([info("a", 1), info("b", 1), info("me", 1)], 0);
    assert_eq!(m.status("b"), Some(PeerStatus::Down));
    assert!(m.tick(0).contains(&Effect::Dial("b:4000".into())));
    assert_eq!(m.known().len(), 3);
}

#[test]
fn a_restarted_peer_is_reported_and_a_stale_one_refused() {
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    m.link_down("a", 5);
    assert_eq!(m.link_up(info("a", 2), 10).0, Joined::Restarted);
    assert_eq!(m.link_up(info("a", 1), 20), (Joined::Stale, vec![]));
    // A replacement link of the same process while up is a quiet reconnect.
    assert_eq!(m.link_up(info("a", 2), 30), (Joined::Reconnected, vec![]));
}

#[test]
fn a_restart_with_an_older_incarnation_is_accepted_once_the_known_one_is_down() {
    // Incarnations are wall-clock times: a clock stepped back before a
    // restart gives the new process a smaller one. It must not be locked out.
    let mut m = node(&[]);
    m.link_up(info("a", 100), 0);
    m.link_down("a", 5);
    assert_eq!(
        m.link_up(info("a", 90), 10),
        (Joined::Restarted, vec![Effect::ViewChanged])
    );
    assert_eq!(m.info("a").map(|i| i.id.incarnation), Some(90));
    // While that process is up, another (older or not) is a duplicate.
    assert_eq!(m.link_up(info("a", 80), 20), (Joined::Stale, vec![]));
}

#[test]
fn a_peer_down_longer_than_forget_down_after_is_forgotten() {
    let config = MembershipConfig::default();
    let forget = config.forget_down_after_ms;
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    m.link_down("a", 10);
    m.gossip([info("b", 1)], 20);
    assert_eq!(m.known().len(), 3);
    // Redialled meanwhile, and still known just before the bound.
    let effects = m.tick(10 + forget - 1);
    assert!(!effects.contains(&Effect::Forget("a".into())));
    assert!(m.status("a").is_some());
    let effects = m.tick(10 + forget);
    assert!(effects.contains(&Effect::Forget("a".into())));
    assert!(!effects.contains(&Effect::Dial("a:4000".into())));
    assert_eq!(m.status("a"), None);
    assert_eq!(m.tick(20 + forget), vec![Effect::Forget("b".into())]);
    assert_eq!(m.known(), vec![m.me().clone()]);
    // Nothing is dialled any more; a node that comes back simply joins.
    assert!(m.tick(100 * forget).is_empty());
    assert_eq!(m.link_up(info("a", 1), 100 * forget).0, Joined::New);
}

#[test]
fn departed_peers_are_forgotten_too() {
    let forget = MembershipConfig::default().forget_down_after_ms;
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    m.peer_left("a", 0);
    assert_eq!(m.tick(forget), vec![Effect::Forget("a".into())]);
    assert_eq!(m.status("a"), None);
}

#[test]
fn an_up_peer_is_never_forgotten() {
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    let forget = MembershipConfig::default().forget_down_after_ms;
    let mut now = 0;
    while now < 2 * forget {
        now += 100;
        m.heard_from("a", now);
        assert!(!m.tick(now).contains(&Effect::Forget("a".into())));
    }
    assert_eq!(m.status("a"), Some(PeerStatus::Up));
}

#[test]
fn forgetting_before_declaring_down_is_refused() {
    let bad = MembershipConfig {
        forget_down_after_ms: 500,
        ..MembershipConfig::default()
    };
    assert!(
        matches!(bad.validate(), Err(Error::InvalidConfig(m)) if m.contains("forget_down_after_ms"))
    );
}

#[test]
fn a_leaving_node_drops_out_of_its_own_view_and_stops_dialling() {
    let mut m = node(&["s:1"]);
    m.link_up(info("a", 1), 0);
    assert_eq!(m.leave(), vec![Effect::ViewChanged]);
    assert!(m.leave().is_empty());
    assert_eq!(view_names(&m), ["a"]);
    m.link_down("a", 1);
    assert!(m.tick(10_000).iter().all(|e| !matches!(e, Effect::Dial(_))));
}

#[test]
fn a_departed_peer_is_not_redialled_until_a_new_incarnation() {
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    assert_eq!(m.peer_left("a", 0), vec![Effect::ViewChanged]);
    assert_eq!(view_names(&m), ["me"]);
    assert!(m.tick(10_000).is_empty());
    m.gossip([info("a", 2)], 10_000);
    assert_eq!(m.tick(10_000), vec![Effect::Dial("a:4000".into())]);
}

#[test]
fn client_nodes_are_in_the_view_with_weight_zero() {
    let mut m = node(&[]);
    let mut client = info("client", 1);
    client.weight = 0;
    m.link_up(client, 0);
    let view = m.view();
    assert!(view.contains(&Member::new("client", 0)));
}

#[derive(Debug, Clone)]
enum Event {
    Up(u8, u64),
    Down(u8),
    Heard(u8),
    Left(u8),
    Gossip(u8, u64),
    DialFailed(u8),
    Tick(u16),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0u8..4, 1u64..4).prop_map(|(n, i)| Event::Up(n, i)),
        (0u8..4).prop_map(Event::Down),
        (0u8..4).prop_map(Event::Heard),
        (0u8..4).prop_map(Event::Left),
        (0u8..4, 1u64..4).prop_map(|(n, i)| Event::Gossip(n, i)),
        (0u8..4).prop_map(Event::DialFailed),
        (0u16..700).prop_map(Event::Tick),
    ]
}

proptest! {
    /// Whatever happens, the view holds this node (it never left) and only
    /// up peers, and no peer stays up while silent past the bound.
    #[test]
    fn view_holds_me_and_only_live_peers(events in prop::collection::vec(event(), 1..200)) {
        let config = MembershipConfig::default();
        let mut m = node(&[]);
        let mut now = 0u64;
        let mut last_heard = std::collections::HashMap::new();
        for e in events {
            let name = |n: u8| format!("p{n}");
            match e {
                Event::Up(n, i) => {
                    let (joined, _) = m.link_up(info(&name(n), i), now);
                    if joined != Joined::Stale { last_heard.insert(name(n), (now, false)); }
                }
                Event::Down(n) => { m.link_down(&name(n), now); }
                Event::Heard(n) => {
                    m.heard_from(&name(n), now);
                    last_heard.insert(name(n), (now, true));
                }
                Event::Left(n) => { m.peer_left(&name(n), now); }
                Event::Gossip(n, i) => m.gossip([info(&name(n), i)], now),
                Event::DialFailed(n) => m.dial_failed(&format!("{}:4000", name(n)), now),
                Event::Tick(dt) => {
                    now += u64::from(dt);
                    m.tick(now);
                    for p in m.up_peers() {
                        let (heard, once) = last_heard.get(&*p.id.node).copied().unwrap_or((0, false));
                        // A new link's peer has the grace for its first frame.
                        let grace = if once { 0 } else { FIRST_FRAME_GRACE_MS };
                        prop_assert!(now - heard <= config.down_after_ms + grace,
                            "{} up though silent since {}", p.id.node, heard);
                    }
                }
            }
            let view = view_names(&m);
            prop_assert!(view.contains(&"me".to_string()));
            for name in view.iter().filter(|n| *n != "me") {
                prop_assert_eq!(m.status(name), Some(PeerStatus::Up));
            }
        }
    }
}

#[test]
fn discovered_addresses_are_dialled_unless_they_are_ours_a_peers_or_pending() {
    let mut m = node(&["a:4000"]);
    let (_, _) = m.link_up(info("b", 1), 0);
    assert!(!m.add_seed("me:4000", 0), "our own address");
    assert!(!m.add_seed("b:4000", 0), "a known peer is dialled by name");
    assert!(!m.add_seed("a:4000", 0), "already a seed");
    assert!(m.add_seed("c:4000", 0));
    assert_eq!(
        m.tick(1),
        vec![Effect::Dial("a:4000".into()), Effect::Dial("c:4000".into())]
    );
    // Gone from discovery before it answered: no more dials.
    m.dial_failed("c:4000", 10);
    m.forget_seed("c:4000");
    let dials: Vec<Effect> = m
        .tick(10_000)
        .into_iter()
        .filter(|e| matches!(e, Effect::Dial(a) if a == "c:4000"))
        .collect();
    assert_eq!(dials, vec![]);
}

#[test]
fn a_configured_seed_is_dialled_again_once_its_peer_is_forgotten() {
    let forget = MembershipConfig::default().forget_down_after_ms;
    let mut m = node(&["a:4000"]);
    assert_eq!(m.tick(0), vec![Effect::Dial("a:4000".into())]);
    m.seed_reached("a:4000", &"a".into());
    m.link_up(info("a", 1), 10);
    // A long partition: a goes down, is redialled by name, then forgotten.
    m.link_down("a", 20);
    let effects = m.tick(20 + forget);
    assert!(effects.contains(&Effect::Forget("a".into())), "{effects:?}");
    // The seed address is dialled again, so the heal joins the two sides.
    assert!(
        effects.contains(&Effect::Dial("a:4000".into())),
        "{effects:?}"
    );
    m.dial_failed("a:4000", 21 + forget);
    let dials: Vec<Effect> = m
        .tick(21 + forget + 100)
        .into_iter()
        .filter(|e| matches!(e, Effect::Dial(_)))
        .collect();
    assert_eq!(dials, vec![Effect::Dial("a:4000".into())]);
    // Reached again: a is re-learned and the seed rests until it is forgotten.
    m.seed_reached("a:4000", &"a".into());
    assert_eq!(m.link_up(info("a", 1), 30 + forget).0, Joined::New);
    assert!(
        m.tick(40 + forget)
            .iter()
            .all(|e| !matches!(e, Effect::Dial(_)))
    );
}

#[test]
fn a_seed_reached_under_another_advertised_address_comes_back_when_forgotten() {
    let forget = MembershipConfig::default().forget_down_after_ms;
    let mut m = node(&["lb:4000"]);
    m.tick(0);
    m.seed_reached("lb:4000", &"a".into());
    m.link_up(info("a", 1), 10);
    // Dialled by name at a:4000 while linked or down, never as a seed.
    m.link_down("a", 20);
    let dials: Vec<Effect> = m
        .tick(200)
        .into_iter()
        .filter(|e| matches!(e, Effect::Dial(_)))
        .collect();
    assert_eq!(dials, vec![Effect::Dial("a:4000".into())]);
    let dials: Vec<Effect> = m
        .tick(20 + forget)
        .into_iter()
        .filter(|e| matches!(e, Effect::Dial(_)))
        .collect();
    assert_eq!(dials, vec![Effect::Dial("lb:4000".into())]);
}

#[test]
fn a_discovered_address_of_a_forgotten_peer_is_dialled_again() {
    let forget = MembershipConfig::default().forget_down_after_ms;
    let mut m = node(&[]);
    m.link_up(info("b", 1), 0);
    // Discovery lists b, known by name already: not a seed for now.
    assert!(!m.add_seed("b:4000", 0));
    m.link_down("b", 10);
    let dials: Vec<Effect> = m
        .tick(10 + forget)
        .into_iter()
        .filter(|e| matches!(e, Effect::Dial(_)))
        .collect();
    assert_eq!(m.status("b"), None);
    assert_eq!(dials, vec![Effect::Dial("b:4000".into())]);
}

#[test]
fn a_gossiped_peer_is_forgotten_without_reviving_addresses_never_configured() {
    let forget = MembershipConfig::default().forget_down_after_ms;
    let mut m = node(&[]);
    m.gossip([info("c", 1)], 0);
    assert_eq!(m.tick(forget), vec![Effect::Forget("c".into())]);
    assert_eq!(m.status("c"), None);
    assert!(m.tick(forget + 1).is_empty());
}

#[test]
fn only_this_node_and_peers_up_are_gossiped() {
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    m.link_up(info("b", 1), 0);
    m.gossip([info("c", 1)], 0);
    m.link_down("b", 10);
    let mut names: Vec<String> = m.gossiped().iter().map(|n| n.id.node.to_string()).collect();
    names.sort();
    // b is down here and c was never reached: a newcomer must not learn of
    // them from us (it would keep a dead member for a whole forget period
    // from the moment it heard, and pass it on).
    assert_eq!(names, ["a", "me"]);
    // Known (and redialled) here all the same, until forgotten.
    assert_eq!(m.known().len(), 4);
}

#[test]
fn a_probed_peer_gets_no_heartbeats_and_is_not_judged_by_silence() {
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    m.link_up(info("b", 1), 0);
    assert!(m.set_probed("a"));
    assert!(!m.set_probed("a"), "already probed");
    m.heard_from("b", 0);
    // b (an earlier build) gets heartbeats and is closed when silent; a is
    // left to the SWIM detector.
    let effects: Vec<Effect> = (1..=30).flat_map(|i| m.tick(i * 100)).collect();
    assert!(!effects.contains(&Effect::Heartbeat("a".into())));
    assert!(effects.contains(&Effect::Heartbeat("b".into())));
    assert!(effects.contains(&Effect::Close("b".into())));
    assert!(!effects.contains(&Effect::Close("a".into())));
    assert_eq!(m.status("a"), Some(PeerStatus::Up));
}

#[test]
fn the_detectors_verdict_closes_the_link_and_a_new_link_is_judged_afresh() {
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    m.set_probed("a");
    assert_eq!(
        m.silent("a", 500),
        vec![Effect::Close("a".into()), Effect::ViewChanged]
    );
    assert_eq!(view_names(&m), ["me"]);
    assert_eq!(m.silent("a", 600), vec![], "already down");
    m.link_up(info("a", 1), 700);
    assert!(!m.is_probed("a"), "a new link must speak SWIM again");
    // A peer that is not up cannot become probed.
    assert!(!m.set_probed("nobody"));
}

#[test]
fn a_new_links_peer_has_the_handshakes_time_to_send_its_first_frame() {
    let config = MembershipConfig::default();
    let mut m = node(&[]);
    m.link_up(info("a", 1), 0);
    let closes = |m: &mut Membership, from: u64, to: u64| {
        (from..=to)
            .step_by(100)
            .find(|t| m.tick(*t).contains(&Effect::Close("a".into())))
    };
    assert_eq!(closes(&mut m, 0, 5_000), None);
    assert_eq!(
        closes(&mut m, 5_000, 6_000),
        Some(config.down_after_ms + FIRST_FRAME_GRACE_MS + 100)
    );
}
