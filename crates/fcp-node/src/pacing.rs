//! Pacing and congestion control of what a node sends to one peer, and the
//! pace at which a peer's serves arrive: sans-IO, with the time an input
//! (spec §8.4 pacing; decisions 72–78). The daemon holds one of each per
//! peer and feeds them the answers its sessions bring.

use std::time::Duration;

/// A send clock: each datagram takes `1 / rate` of it, so senders sharing
/// one keep to the rate together (spec §8.4 pacing).
#[derive(Debug)]
pub(crate) struct Pacer {
    /// When the datagrams reserved so far have all gone.
    next: tokio::time::Instant,
}

impl Pacer {
    /// How far sending may run ahead of the clock: a timer's granularity
    /// (1 ms), so that waits shorter than a tick do not round up and slow
    /// the rate. An idle sender keeps no credit beyond it.
    const BURST: Duration = Duration::from_millis(1);

    pub(crate) fn new() -> Self {
        Self {
            next: tokio::time::Instant::now(),
        }
    }

    /// Reserve `n` datagrams at `per_ms`: when they may go (at once, if the
    /// clock is less than `BURST` ahead of `now`).
    pub(crate) fn reserve(
        &mut self,
        now: tokio::time::Instant,
        n: usize,
        per_ms: f64,
    ) -> tokio::time::Instant {
        let start = self.next.max(now);
        let rate = per_ms.max(Aimd::MIN) * 1000.0;
        self.next = start + Duration::from_secs_f64(n as f64 / rate);
        start.checked_sub(Self::BURST).unwrap_or(start)
    }
}

/// The send rate to one peer, in datagrams per millisecond, driven by
/// the pushes' store acknowledgements and the reports on serves
/// (`Control::OfferReceived`) as TCP drives its window (RFC 5681), in rate
/// form: many pushes and serves run at once and each reports on its own
/// datagrams (`on_report`).
/// - In slow start, `n` datagrams delivered in a round of `rtt` ms add
///   `n / rtt`: the window (rate × round trip) grows by what got through,
///   doubling each round trip. After it, the rate grows each round trip by
///   half the way back to the rate it was last cut from for congestion
///   (`w_max`), then past it by as much as it is past (binary increase, as
///   BIC, the forerunner of CUBIC), at least by TCP's one datagram per
///   round trip and at most by a quarter; a report adds its share of a
///   round trip's datagrams of that.
/// - Losses are judged over a window of about one round trip: the reports
///   that come in until one arrives of a round sent after the window
///   began (decision 74).
/// - A window in which over an eighth of at least `SAMPLE` datagrams were
///   lost is congestion, as soon as that is so: the rate halves and slow
///   start ends, as TCP's; it comes down further, to what the path was
///   seen to deliver (the largest sample of the last second, once three
///   are in), if that is less, at most to an eighth (TCP Westwood+'s
///   bandwidth estimate; decision 78): a rate far above the path comes
///   down in one cut, not one per window of losses. Reports of what was
///   sent before that cut answer the same congestion and are not counted.
/// - Otherwise, at a window's end, the rate is cut by half the share it
///   lost (2 % lost: 1 %; DCTCP's decrease, RFC 8257, with the lost share in
///   place of the marked one; decision 73), so that random loss on a lossy
///   link neither drives the rate to its floor nor ends slow start (past
///   slow start, growth goes on from the cut rate).
/// - A window that heard no report for over a second before the next round
///   was sent (an idle peer between two puts) is forgotten.
/// - While a queue stands on the path (a round all of which arrived took
///   1.5 times the least round trip of its kind), the send windows are
///   sized by at most twice the delivery rate measured while one stood
///   (`window_rate`, [`Delivery`], decision 78).
#[derive(Debug)]
pub(crate) struct Aimd {
    pub(crate) per_ms: f64,
    /// Where slow start ends (the rate after the last congestion cut or,
    /// past slow start, the last proportional cut).
    threshold: f64,
    /// When the rate was last cut for congestion.
    last_cut: Option<tokio::time::Instant>,
    /// Where binary increase grows back toward, then past: the rate the
    /// last congestion cut was made from, at most twice the cut rate.
    w_max: f64,
    /// The current loss window: when it began, when its last report came,
    /// datagrams reported in it and how many of them were lost.
    window_start: tokio::time::Instant,
    window_heard: tokio::time::Instant,
    window_sent: u64,
    window_lost: u64,
    /// Cuts made (congestion and proportional cuts), for the node's counters.
    pub(crate) cuts: u64,
    /// What the path was seen to deliver (decision 78).
    delivery: Delivery,
}

impl Aimd {
    pub(crate) const MIN: f64 = 0.25;
    pub(crate) const MAX: f64 = 1000.0;
    pub(crate) const START: f64 = 64.0;

    /// The share lost above which a window is taken for congestion and the
    /// rate halved, as TCP does: queues overflow in bursts, random loss of
    /// a few percent rarely takes an eighth of a window.
    const CONGESTED: f64 = 1.0 / 8.0;
    /// Datagrams a window must have reported before its share can be taken
    /// for congestion: one push round of a few dozen losing five is not.
    const SAMPLE: u64 = 64;
    /// A loss window that heard no report for this long before a round was
    /// sent is stale.
    const STALE: Duration = Duration::from_secs(1);
    /// A cut goes by the delivery rate once this many samples of the last
    /// second are in.
    const TRUSTED_AFTER: u32 = 3;

    pub(crate) fn new(now: tokio::time::Instant) -> Self {
        Self {
            per_ms: Self::START,
            threshold: Self::MAX,
            last_cut: None,
            w_max: 0.0,
            window_start: now,
            window_heard: now,
            window_sent: 0,
            window_lost: 0,
            cuts: 0,
            delivery: Delivery::new(now),
        }
    }

    /// What a round notes when it is sent, for its report.
    pub(crate) fn delivered(&self) -> Delivered {
        self.delivery.total
    }

    /// The rate a send window is sized by: the send rate, but while a
    /// queue stands on the path, at most twice what the path was seen to
    /// deliver (the window is then four times the path's delivery over a
    /// least round trip, as BBR keeps twice its bandwidth-delay product in
    /// flight, not what a rate far above the path would put there).
    pub(crate) fn window_rate(&self, now: tokio::time::Instant) -> f64 {
        self.delivery
            .rate(now)
            .filter(|_| self.delivery.queued)
            .map_or(self.per_ms, |(d, _)| self.per_ms.min(2.0 * d))
    }

    /// At most how many datagrams a send window (each of the push and the
    /// serve window) may hold: its first size plus what the path was seen
    /// to deliver since it was last idle (no delivery reported for
    /// `STALE`). As TCP's slow start grows its window by what is
    /// acknowledged, at most doubling a round trip: on a slow path the
    /// first answers take long (they queue), and a window sized by the
    /// starting rate times a round trip, before the rate came down, let
    /// the windows fill the path's queue many times over (decision 81).
    pub(crate) fn window_cap(&self, now: tokio::time::Instant) -> usize {
        let grown = if self.delivery.busy(now) {
            self.delivery.total.count - self.delivery.busy_base
        } else {
            0
        };
        SendWindow::INITIAL.saturating_add(usize::try_from(grown).unwrap_or(usize::MAX))
    }

    /// How long every round reported on has lost all it sent, counted
    /// from the first such round's first datagram (zero if the last report
    /// had something arrive).
    pub(crate) fn silent_for(&self, now: tokio::time::Instant) -> Duration {
        self.delivery
            .silent_since
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// A report on a round of `kind`: of `sent` datagrams, the first sent
    /// at `sent_at` and the last at `last_at`, `arrived` arrived; `at_send`
    /// is what [`Self::delivered`] was when the round was sent. Whether the
    /// round answers a past cut or ends a window goes by its first
    /// datagram. The round trip that paces growth is a serve's from its
    /// last datagram (one paced over a long time at a low rate would
    /// otherwise look like a long round trip, and the rate could hardly
    /// grow again) and a push round's from its first (rounds are short
    /// under the window; from the last one, puts over the slow simulated
    /// links overshot them).
    pub(crate) fn on_report(
        &mut self,
        kind: Kind,
        arrived: u32,
        sent: u32,
        (sent_at, last_at): (tokio::time::Instant, tokio::time::Instant),
        at_send: Delivered,
        now: tokio::time::Instant,
    ) {
        self.delivery
            .observe(kind, (arrived, sent), (sent_at, last_at), at_send, now);
        if sent == 0 || self.last_cut.is_some_and(|cut| sent_at < cut) {
            return;
        }
        if sent_at.saturating_duration_since(self.window_heard) > Self::STALE {
            // The window's reports are from long before this round (an
            // idle peer between two puts): they say nothing of the path
            // now. This report is judged alone.
            self.new_window(sent_at);
        }
        let arrived = arrived.min(sent);
        let n = f64::from(arrived);
        let grows_from = match kind {
            Kind::Push => sent_at,
            Kind::Serve => last_at,
        };
        let rtt_ms = (now.saturating_duration_since(grows_from).as_secs_f64() * 1000.0).max(1.0);
        let gain = if self.per_ms < self.threshold {
            n / rtt_ms
        } else {
            // This report's share of a round trip's datagrams, times the
            // step a round trip takes (binary increase, as BIC: half the
            // way back to the rate of the last congestion, then probing
            // past it by as much again; at least TCP's one datagram per
            // round trip, at most a quarter of the rate).
            let distance = (self.w_max - self.per_ms).abs() / 2.0;
            let step = distance.max(1.0 / rtt_ms).min(self.per_ms / 4.0);
            n / (self.per_ms * rtt_ms) * step
        };
        self.per_ms = (self.per_ms + gain).min(Self::MAX);
        self.window_heard = now;
        self.window_sent += u64::from(sent);
        self.window_lost += u64::from(sent - arrived);
        let share = self.window_lost as f64 / self.window_sent as f64;
        if self.window_sent >= Self::SAMPLE && share > Self::CONGESTED {
            // Halved, or down to what the path was seen to deliver if
            // that is less (TCP Westwood+'s bandwidth estimate): a rate
            // far above the path (the start, before any report) comes
            // down in one cut, not one per window of losses. Binary
            // increase then grows toward twice that, as after a halving.
            let half = self.per_ms / 2.0;
            let cut = self
                .delivery
                .rate(now)
                .filter(|(_, n)| *n >= Self::TRUSTED_AFTER)
                .map_or(half, |(d, _)| d.clamp(self.per_ms / 8.0, half));
            self.w_max = self.per_ms.min(2.0 * cut);
            self.per_ms = cut.max(Self::MIN);
            self.threshold = self.per_ms;
            self.last_cut = Some(now);
            self.cuts += 1;
            self.new_window(now);
        } else if sent_at >= self.window_start {
            // A round sent after the window began: the window is over.
            if self.window_lost > 0 {
                let in_slow_start = self.per_ms < self.threshold;
                self.per_ms = (self.per_ms * (1.0 - share / 2.0)).max(Self::MIN);
                if !in_slow_start {
                    // Past slow start, growth goes on from the cut rate
                    // (not slow start again).
                    self.threshold = self.per_ms;
                }
                self.cuts += 1;
            }
            self.new_window(now);
        }
    }

    fn new_window(&mut self, now: tokio::time::Instant) {
        self.window_start = now;
        self.window_heard = now;
        self.window_sent = 0;
        self.window_lost = 0;
    }
}

/// Which kind of round a report is on. Their round trips differ (a push
/// round's answer waits for the holder's commit, a serve's report does
/// not), so each kind has its own least round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Push,
    Serve,
}

/// Datagrams reported arrived over a path, over all rounds, and when that
/// count last grew: a round notes it when sent (see [`Delivery::observe`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Delivered {
    count: u64,
    at: Option<tokio::time::Instant>,
}

/// What a path was seen to deliver, from the reports on the rounds sent
/// over it (decision 78).
#[derive(Debug)]
struct Delivery {
    total: Delivered,
    /// Since when every round reported on lost all it sent (from its
    /// first datagram, or the last delivery if later): the path may
    /// deliver nothing at all.
    silent_since: Option<tokio::time::Instant>,
    /// When the last report came (whatever arrived).
    last_report: Option<tokio::time::Instant>,
    /// `total.count` when reports resumed after the path was idle: what
    /// was delivered since bounds the send windows (see
    /// [`Aimd::window_cap`]).
    busy_base: u64,
    /// By [`Kind`], the least round trip from the last datagram of a round
    /// all of which arrived.
    rtt_min: [LeastRtt; 2],
    /// Whether the last such round took over `QUEUED` times its kind's
    /// least: a queue stands on the path.
    queued: bool,
    /// Delivery-rate samples taken while a queue stood: by 100 ms bucket
    /// of the last second, the largest and how many (a windowed maximum,
    /// as BBR's bottleneck bandwidth filter), with the bucket's number
    /// counted from `origin`.
    buckets: [(f64, u32, Option<u128>); Delivery::BUCKETS],
    origin: tokio::time::Instant,
}

impl Delivery {
    /// A round trip this many times the least one: a queue stands.
    const QUEUED: f64 = 1.5;
    const BUCKET_MS: u128 = 100;
    /// Reports on a busy path come closer together than this.
    const IDLE: Duration = Duration::from_millis(100);
    const BUCKETS: usize = 10;

    fn new(now: tokio::time::Instant) -> Self {
        Self {
            total: Delivered::default(),
            busy_base: 0,
            silent_since: None,
            last_report: None,
            rtt_min: [LeastRtt::default(); 2],
            queued: false,
            buckets: [(0.0, 0, None); Self::BUCKETS],
            origin: now,
        }
    }

    /// Whether something was reported delivered within the last `STALE`.
    fn busy(&self, now: tokio::time::Instant) -> bool {
        self.total
            .at
            .is_some_and(|at| now.saturating_duration_since(at) <= Aimd::STALE)
    }

    fn bucket(&self, now: tokio::time::Instant) -> u128 {
        now.saturating_duration_since(self.origin).as_millis() / Self::BUCKET_MS
    }

    /// The path's delivery rate, per ms: the largest sample of the last
    /// second, and how many were taken in it.
    fn rate(&self, now: tokio::time::Instant) -> Option<(f64, u32)> {
        let current = self.bucket(now);
        let oldest = current.saturating_sub(Self::BUCKETS as u128 - 1);
        self.buckets
            .iter()
            .filter(|(_, _, b)| b.is_some_and(|b| (oldest..=current).contains(&b)))
            .fold(None, |acc, (max, n, _)| match acc {
                None => Some((*max, *n)),
                Some((m, k)) => Some((m.max(*max), k.saturating_add(*n))),
            })
    }

    /// A report on a round of `kind`: `arrived` of `sent` datagrams, the
    /// first sent at `first`, the last at `last`. Only a round all of which
    /// arrived says anything of the path (a lossy one is reported after
    /// the wait for its stragglers); of it:
    /// - the round trip from its last datagram, against its kind's least:
    ///   over 1.5 times it, a queue stands;
    /// - while one does, a delivery-rate sample: what was reported arrived
    ///   since the count last grew before the round was sent (its own
    ///   included; unless that was over 100 ms before, the path idle),
    ///   over that time or the round's, the longer (BBR's rate samples,
    ///   draft-cheng-iccrg-delivery-rate-estimation: the longer span keeps
    ///   a burst of reports, or a round held back by the send clock, from
    ///   reading fast). With no queue, what went through says
    ///   what the senders had to send, not what the path could carry.
    fn observe(
        &mut self,
        kind: Kind,
        (arrived, sent): (u32, u32),
        (first, last): (tokio::time::Instant, tokio::time::Instant),
        at_send: Delivered,
        now: tokio::time::Instant,
    ) {
        let arrived = arrived.min(sent);
        // Silence counts only across reports: after an idle spell (no
        // report for `STALE`) it starts again, and never before the last
        // delivery (a round sent before it may be answered after it).
        let after_idle = self
            .last_report
            .is_none_or(|t| now.saturating_duration_since(t) > Aimd::STALE);
        self.last_report = Some(now);
        if arrived > 0 || after_idle {
            self.silent_since = None;
        }
        if arrived == 0 && sent > 0 {
            let from = self.total.at.map_or(first, |at| first.max(at));
            self.silent_since.get_or_insert(from);
        }
        if arrived > 0 {
            if !self.busy(now) {
                self.busy_base = self.total.count;
            }
            self.total.count = self.total.count.saturating_add(u64::from(arrived));
            self.total.at = Some(now);
        }
        if sent == 0 || arrived < sent {
            return;
        }
        let ms_since =
            |t: tokio::time::Instant| now.saturating_duration_since(t).as_secs_f64() * 1000.0;
        let rtt = ms_since(last);
        let min = &mut self.rtt_min[kind as usize];
        min.see(rtt, now);
        self.queued = min.ms().is_some_and(|m| rtt > Self::QUEUED * m.max(1.0));
        // A count that last grew long before the round went means the path
        // was idle: its deliveries are counted over the round's own time
        // (as BBR restarts its interval when nothing is in flight).
        let busy_from = at_send
            .at
            .filter(|at| first.saturating_duration_since(*at) <= Self::IDLE);
        let span = ms_since(first).max(busy_from.map_or(0.0, ms_since));
        if !self.queued || span < 1.0 {
            return;
        }
        let rate = self.total.count.saturating_sub(at_send.count) as f64 / span;
        let b = self.bucket(now);
        if let Some(slot) = self.buckets.get_mut((b % Self::BUCKETS as u128) as usize) {
            *slot = match *slot {
                (max, n, Some(at)) if at == b => (max.max(rate), n.saturating_add(1), Some(b)),
                _ => (rate, 1, Some(b)),
            };
        }
    }
}

/// Datagrams of one kind in flight to one peer: push rounds whose StoreAck
/// has not come (decision 74), or serves the requester has not reported on
/// (decision 76); at most about two rate × round trips of them, the round
/// trip being the least seen lately (decision 75).
/// Without this bound the pushes of a put (up to `PARALLEL_OBJECTS` at once)
/// each reserved their datagrams on the peer's clock at the starting rate
/// before any answer came, so a cut slowed only what came after them all,
/// and each push's report arrived long after its first datagram; the serves
/// of a get (`PARALLEL_FETCHES` objects at once) did the same.
#[derive(Debug, Default)]
pub(crate) struct SendWindow {
    pub(crate) in_flight: usize,
    /// The least time from a round's last datagram to its answer.
    min_rtt: LeastRtt,
}

/// The least round trip seen lately, in ms, and when it was seen: kept for
/// `FOR`, then the next one replaces it, however large (the path may have
/// changed; as BBR's min_rtt).
#[derive(Clone, Copy, Debug, Default)]
struct LeastRtt(Option<(f64, tokio::time::Instant)>);

impl LeastRtt {
    const FOR: Duration = Duration::from_secs(10);

    fn see(&mut self, ms: f64, now: tokio::time::Instant) {
        let stale = |at| now.saturating_duration_since(at) > Self::FOR;
        if self.0.is_none_or(|(min, at)| ms <= min || stale(at)) {
            self.0 = Some((ms, now));
        }
    }

    fn ms(&self) -> Option<f64> {
        self.0.map(|(ms, _)| ms)
    }
}

impl SendWindow {
    /// Before any answer: a generous first window (TCP starts with 10
    /// segments; a push round is tens of datagrams).
    const INITIAL: usize = 256;
    /// Never below this: a few push rounds.
    const MIN: usize = 64;

    /// Two `per_ms` × the least round trip, within `cap`
    /// ([`Aimd::window_cap`]) and at least `MIN`.
    pub(crate) fn size(&self, per_ms: f64, cap: usize) -> usize {
        self.min_rtt
            .ms()
            .map_or(Self::INITIAL, |rtt| (2.0 * per_ms * rtt.max(1.0)) as usize)
            .min(cap)
            .max(Self::MIN)
    }

    /// Take `n` datagrams if the window has room for any: a round is
    /// admitted whole, so one larger than the window is not starved, and
    /// the window may overshoot by one round. A round with nothing to send
    /// (a StoreEnd alone) never waits.
    pub(crate) fn try_take(&mut self, n: usize, per_ms: f64, cap: usize) -> bool {
        if n == 0 || self.in_flight < self.size(per_ms, cap) {
            self.in_flight = self.in_flight.saturating_add(n);
            true
        } else {
            false
        }
    }

    /// How long a serve's datagrams stay in the window without the
    /// requester's report: two least round trips plus `slack` (what the
    /// requester may wait before it reports), at most a second (decision 76).
    pub(crate) fn report_wait(&self, slack: Duration) -> Duration {
        let rtt = self
            .min_rtt
            .ms()
            .map_or(Duration::ZERO, |ms| Duration::from_secs_f64(ms / 1000.0));
        (2 * rtt + slack).min(Duration::from_secs(1))
    }

    /// A round was answered `rtt` after its last datagram, at `now`. The
    /// least round trip, not a smoothed one: the answer waits for the last
    /// datagram (decision 75), so a round trip includes the time it queued,
    /// and a window grown with it would keep that queue full.
    pub(crate) fn answered(&mut self, rtt: Duration, now: tokio::time::Instant) {
        self.min_rtt.see(rtt.as_secs_f64() * 1000.0, now);
    }
}

/// How fast a peer's serves arrive here: the median time per datagram of
/// its last `KEPT` complete offers of at least `SAMPLE` datagrams, from the
/// first handled to the last (decision 77). A median, so that neither one
/// offer handled in a single batch nor one handled late (the node busy)
/// decides it. A node that stays too busy to keep up reads the path slow.
#[derive(Debug, Default)]
pub(crate) struct PathIn {
    /// Milliseconds per datagram of the last offers taken (a ring).
    recent: [f64; PathIn::KEPT],
    taken: usize,
}

impl PathIn {
    /// Smaller offers arrive in one burst or two: their pace says little.
    const SAMPLE: u64 = 16;
    /// Below this pace (~38 MB/s) the path, not the CPU, bounds a get over
    /// it, and a RaptorQ solve costs less than waiting for its symbols.
    const SLOW: f64 = 32.0;
    /// Offers the pace is the median of.
    const KEPT: usize = 5;
    /// Offers taken before the pace is judged.
    const JUDGED_AFTER: usize = 3;

    /// A complete offer of `arrived` datagrams came in over `span`.
    pub(crate) fn offer_in(&mut self, arrived: u64, span: Duration) {
        if arrived < Self::SAMPLE {
            return;
        }
        let each = span.as_secs_f64() * 1000.0 / (arrived - 1) as f64;
        if let Some(slot) = self.recent.get_mut(self.taken % Self::KEPT) {
            *slot = each;
        }
        self.taken = self.taken.saturating_add(1);
    }

    /// The pace in datagrams per ms, once any offer was taken.
    pub(crate) fn per_ms(&self) -> Option<f64> {
        let mut recent = self.recent;
        let kept = recent.get_mut(..self.taken.min(Self::KEPT))?;
        kept.sort_by(f64::total_cmp);
        let m = *kept.get(kept.len() / 2)?;
        Some(if m > 0.0 { 1.0 / m } else { f64::INFINITY })
    }

    /// Whether the path is known, and slow.
    pub(crate) fn slow(&self) -> Option<bool> {
        self.per_ms()
            .filter(|_| self.taken >= Self::JUDGED_AFTER)
            .map(|p| p < Self::SLOW)
    }
}

/// Whether any path is known, and every known one is slow.
pub(crate) fn all_known_slow(paths: impl Iterator<Item = Option<bool>>) -> bool {
    let mut known = paths.flatten().peekable();
    known.peek().is_some() && known.all(|slow| slow)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{Aimd, Delivered, Kind, Pacer, PathIn, SendWindow, all_known_slow};
    use std::time::Duration;

    /// A test clock: `n` ms after now.
    pub(crate) fn clock() -> impl Fn(u64) -> tokio::time::Instant {
        let t0 = tokio::time::Instant::now();
        move |n| t0 + Duration::from_millis(n)
    }

    #[test]
    fn a_pacer_keeps_senders_sharing_it_to_the_rate() {
        let t0 = tokio::time::Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        let mut p = Pacer { next: t0 };
        // 10 per ms: ten batches of 10 from two senders take 10 ms of the
        // clock together; each may go up to 1 ms ahead of it.
        let at: Vec<_> = (0..10).map(|_| p.reserve(t0, 10, 10.0)).collect();
        assert!(at[0] <= t0 && at[1] <= t0);
        assert_eq!(at[9], t0 + ms(8));
        assert_eq!(p.next, t0 + ms(10));
        // An idle clock gives no credit beyond 1 ms: after a pause, a
        // burst is what runs ahead, not what the pause would have allowed.
        let later = t0 + ms(100);
        assert!(p.reserve(later, 10, 10.0) <= later);
        assert_eq!(p.reserve(later, 10, 10.0), later);
        assert_eq!(p.reserve(later, 10, 10.0), later + ms(1));
    }

    /// A serve of `sent` datagrams sent at `at`, of which `arrived` were
    /// reported at `now`, giving no delivery sample: the loss and growth
    /// rules alone.
    fn report(
        a: &mut Aimd,
        arrived: u32,
        sent: u32,
        at: tokio::time::Instant,
        now: tokio::time::Instant,
    ) {
        a.on_report(
            Kind::Serve,
            arrived,
            sent,
            (at, at),
            Delivered::default(),
            now,
        );
    }

    /// Rates equal but for rounding.
    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} against {b}");
    }

    #[test]
    fn the_rate_halves_once_per_congestion_and_grows_per_round_trip() {
        let ms = clock();
        let mut a = Aimd::new(ms(0));
        // Slow start: 40 delivered in a 10 ms round add 4. The round was
        // sent after the loss window began: that window ends (clean).
        report(&mut a, 40, 40, ms(0), ms(10));
        close(a.per_ms, Aimd::START + 4.0);
        // Two rounds sent before the new window (from 10 ms) began, each
        // losing a quarter: the first, 40 datagrams, is too few to judge;
        // with the second the window lost a quarter of 80, congestion:
        // the rate (grown by what arrived) halves, and slow start ends.
        report(&mut a, 30, 40, ms(5), ms(15));
        close(a.per_ms, 71.0);
        report(&mut a, 30, 40, ms(6), ms(16));
        close(a.per_ms, 37.0);
        assert_eq!(a.threshold, 37.0);
        // What was sent before that cut answers the same congestion.
        report(&mut a, 0, 40, ms(8), ms(18));
        close(a.per_ms, 37.0);
        // Past slow start the rate grows back toward the rate it was cut
        // from (74) by half the way per round trip, at most a quarter of
        // the rate: a round trip's worth (37 per ms over 10 ms) adds 9.25.
        report(&mut a, 370, 370, ms(20), ms(30));
        close(a.per_ms, 46.25);
        // Small losses are summed over the window (from 30 ms) and cut
        // once at its end, by half the share: 2 of 100 lost, 1 %.
        a.threshold = 46.25;
        a.w_max = 46.25;
        report(&mut a, 49, 50, ms(25), ms(35));
        let grown = 46.25 + 49.0 / (46.25 * 10.0) * 0.1;
        close(a.per_ms, grown);
        report(&mut a, 49, 50, ms(31), ms(40));
        let grown = grown + 49.0 / (grown * 9.0) * (1.0 / 9.0);
        close(a.per_ms, grown * 0.99);
        assert_eq!(a.cuts, 2);
        // After a proportional cut past slow start, growth goes on from
        // the cut rate (not slow start again).
        close(a.threshold, a.per_ms);
        // Half the way back: 70 toward 74 adds 2 in a round trip; at 74,
        // TCP's one datagram per round trip (0.1 per ms over 10 ms); past
        // it, probing by as much as it is past: 80 adds 3.
        for (from, to) in [(70.0, 72.0), (74.0, 74.1), (80.0, 83.0)] {
            a.per_ms = from;
            a.w_max = 74.0;
            report(
                &mut a,
                (from * 10.0) as u32,
                (from * 10.0) as u32,
                ms(50),
                ms(60),
            );
            close(a.per_ms, to);
        }
        // Never below the floor, never above the ceiling.
        for i in 0..20 {
            report(&mut a, 0, 100, ms(100 + 2 * i), ms(101 + 2 * i));
        }
        assert_eq!(a.per_ms, Aimd::MIN);
        let mut b = Aimd::new(ms(0));
        report(&mut b, 1_000_000, 1_000_000, ms(0), ms(1));
        assert_eq!(b.per_ms, Aimd::MAX);
    }

    #[test]
    fn random_loss_cuts_in_proportion_and_keeps_slow_start() {
        let ms = clock();
        // 5 % lost: the rate (grown by the 95 that arrived) loses 2.5 %,
        // and slow start goes on: the next clean round doubles as before.
        let mut a = Aimd::new(ms(0));
        report(&mut a, 95, 100, ms(0), ms(10));
        close(a.per_ms, (Aimd::START + 9.5) * 0.975);
        assert_eq!(a.threshold, Aimd::MAX);
        let before = a.per_ms;
        report(&mut a, 100, 100, ms(10), ms(20));
        close(a.per_ms, before + 10.0);
        // One push round of 34 losing 5 (15 %) is too few datagrams to
        // call congestion: cut by half its share, not halved.
        let mut c = Aimd::new(ms(0));
        report(&mut c, 29, 34, ms(0), ms(10));
        close(c.per_ms, (Aimd::START + 2.9) * (1.0 - 5.0 / 68.0));
        assert_eq!(c.threshold, Aimd::MAX);
        assert_eq!(c.cuts, 1);
        // A round that sent nothing is no report.
        report(&mut c, 0, 0, ms(20), ms(30));
        assert_eq!(c.cuts, 1);
        // A window left open (a round sent before it began lost half of
        // 40, too few to judge) is stale 100 s later: the next put's first
        // round is judged alone, and a clean one cuts nothing.
        let mut d = Aimd::new(ms(0));
        report(&mut d, 40, 40, ms(0), ms(10));
        report(&mut d, 20, 40, ms(5), ms(12));
        assert_eq!((d.window_sent, d.window_lost), (40, 20));
        let before = d.per_ms;
        report(&mut d, 30, 30, ms(100_000), ms(100_010));
        close(d.per_ms, before + 3.0);
        assert_eq!(d.cuts, 0);
        assert_eq!(d.threshold, Aimd::MAX);
    }

    /// The windows grow from their first size by what the path delivered
    /// since it was last idle, as TCP's slow start (decision 81), and a
    /// path that lost every round is silent from the first of them.
    #[test]
    fn the_windows_grow_by_what_was_delivered_and_silence_is_timed() {
        let ms = clock();
        let mut a = Aimd::new(ms(0));
        assert_eq!(a.window_cap(ms(0)), SendWindow::INITIAL);
        // Before any answer the window is its first size; the cap bounds a
        // window sized by a long round trip at the starting rate.
        let mut w = SendWindow::default();
        w.answered(Duration::from_millis(100), ms(0));
        assert_eq!(w.size(Aimd::START, usize::MAX), 12_800);
        assert_eq!(
            w.size(Aimd::START, a.window_cap(ms(0))),
            SendWindow::INITIAL
        );
        // Rounds that lost everything: no growth, and silent from the
        // first one's first datagram.
        report(&mut a, 0, 34, ms(10), ms(50));
        report(&mut a, 0, 34, ms(20), ms(60));
        assert_eq!(a.window_cap(ms(60)), SendWindow::INITIAL);
        assert_eq!(a.silent_for(ms(3010)), Duration::from_secs(3));
        // Silence is counted across reports, not across an idle spell: a
        // path that lost the last round before a pause is not silent for
        // the pause.
        let mut idle = Aimd::new(ms(0));
        report(&mut idle, 0, 1, ms(0), ms(10));
        report(&mut idle, 0, 34, ms(10_000), ms(10_050));
        assert_eq!(idle.silent_for(ms(10_100)), Duration::from_millis(100));
        // 100 delivered: the cap is 100 more, and the silence is over.
        report(&mut a, 60, 64, ms(70), ms(100));
        report(&mut a, 40, 40, ms(80), ms(110));
        assert_eq!(a.window_cap(ms(110)), SendWindow::INITIAL + 100);
        assert_eq!(a.silent_for(ms(5000)), Duration::ZERO);
        assert_eq!(
            w.size(Aimd::START, a.window_cap(ms(110))),
            SendWindow::INITIAL + 100
        );
        // Idle for over a second: the window starts again from its first
        // size, and grows from there by what is delivered anew.
        assert_eq!(a.window_cap(ms(1200)), SendWindow::INITIAL);
        report(&mut a, 30, 30, ms(1200), ms(1210));
        assert_eq!(a.window_cap(ms(1210)), SendWindow::INITIAL + 30);
        // A small window is not cut below its least.
        assert_eq!(w.size(0.25, a.window_cap(ms(1210))), SendWindow::MIN);
    }

    #[test]
    fn a_congested_rate_comes_down_to_what_the_path_delivered() {
        let ms = clock();
        let mut a = Aimd::new(ms(0));
        // A round all in after 2 ms: the least round trip, no queue, no
        // sample; the windows go by the send rate.
        a.on_report(Kind::Serve, 200, 200, (ms(0), ms(0)), a.delivered(), ms(2));
        assert_eq!(
            a.delivered(),
            Delivered {
                count: 200,
                at: Some(ms(2))
            }
        );
        assert!(!a.delivery.queued);
        assert_eq!(a.delivery.rate(ms(2)), None);
        close(a.window_rate(ms(2)), a.per_ms);
        // Rounds that queued (6 ms, three times the least), each all in,
        // with 160 more delivered since the count last grew before it was
        // sent, 5 ms earlier: 192 over the longer of 5 ms and its own 6,
        // 32 per ms. The windows now go by twice that.
        let queued = |a: &mut Aimd, at: u64| {
            let d = a.delivered();
            let at_send = Delivered {
                count: d.count.saturating_sub(160),
                at: Some(ms(at + 1)),
            };
            a.on_report(Kind::Serve, 32, 32, (ms(at), ms(at)), at_send, ms(at + 6));
        };
        for i in 0..4 {
            queued(&mut a, 2 + i);
        }
        assert!(a.delivery.queued);
        assert_eq!(a.delivery.rate(ms(9)), Some((32.0, 4)));
        assert!(a.per_ms > 64.0);
        close(a.window_rate(ms(9)), 64.0);
        // A lossy round gives no sample, however late its report.
        a.on_report(
            Kind::Serve,
            20,
            32,
            (ms(10), ms(10)),
            a.delivered(),
            ms(200),
        );
        assert_eq!(a.delivered().count, 200 + 32 * 4 + 20);
        assert_eq!(a.delivery.rate(ms(200)), Some((32.0, 4)));
        // Samples last a second.
        assert_eq!(a.delivery.rate(ms(1100)), None);
        // A push round has its own least round trip: its commit makes it
        // longer than a serve's, not a queue.
        a.on_report(
            Kind::Push,
            32,
            32,
            (ms(190), ms(190)),
            a.delivered(),
            ms(201),
        );
        assert!(!a.delivery.queued);
        // Congestion: down to what the path delivered (32 per ms), not just
        // halved; binary increase then grows toward twice that.
        a.on_report(
            Kind::Serve,
            0,
            64,
            (ms(201), ms(201)),
            a.delivered(),
            ms(202),
        );
        close(a.per_ms, 32.0);
        close(a.threshold, 32.0);
        close(a.w_max, 64.0);
        // A burst of reports does not read fast: the span runs from when
        // the count last grew before the round was sent, if that is longer
        // than the round's own (32 over 16 ms, not over its 2).
        let mut b = Aimd::new(ms(0));
        b.on_report(Kind::Serve, 1, 1, (ms(0), ms(0)), b.delivered(), ms(2));
        let at_send = b.delivered();
        b.on_report(Kind::Serve, 31, 31, (ms(16), ms(16)), at_send, ms(18));
        assert!(!b.delivery.queued, "2 ms is no queue");
        b.on_report(Kind::Serve, 32, 32, (ms(12), ms(12)), at_send, ms(18));
        assert_eq!(b.delivery.rate(ms(18)), Some((63.0 / 16.0, 1)));
        // After an idle path (the count last grew over 100 ms before the
        // round went), over the round's own time: 32 over 6 ms, not 1 s.
        let at_send = b.delivered();
        b.on_report(Kind::Serve, 32, 32, (ms(1018), ms(1018)), at_send, ms(1024));
        assert_eq!(b.delivery.rate(ms(1024)), Some((32.0 / 6.0, 1)));
        // The cut is at most a halving and at least an eighth, and it goes
        // by the samples only once three are in: with fewer it halves.
        let mut few = Aimd::new(ms(0));
        few.on_report(
            Kind::Serve,
            200,
            200,
            (ms(0), ms(0)),
            few.delivered(),
            ms(2),
        );
        for i in 0..2 {
            queued(&mut few, 2 + i);
        }
        few.on_report(Kind::Serve, 0, 64, (ms(8), ms(8)), few.delivered(), ms(9));
        close(few.w_max * 0.5, few.per_ms);
        for (samples, cut) in [(1000.0, 0.5), (0.5, 0.125)] {
            let mut c = Aimd::new(ms(0));
            c.delivery.buckets[0] = (samples, 3, Some(0));
            let before = c.per_ms;
            c.on_report(Kind::Serve, 0, 64, (ms(1), ms(1)), c.delivered(), ms(2));
            close(c.per_ms, before * cut);
        }
    }

    #[test]
    fn the_push_window_follows_rate_and_round_trip() {
        let mut w = SendWindow::default();
        // Before any answer: the first window, whatever the rate.
        assert_eq!(w.size(1000.0, usize::MAX), SendWindow::INITIAL);
        // Rounds are taken while any room is left; the last may overshoot.
        let mut taken = 0;
        while w.try_take(34, 16.0, usize::MAX) {
            taken += 34;
        }
        assert_eq!(taken, 34 * 8);
        assert!(!w.try_take(1, 16.0, usize::MAX));
        // A round with nothing to send (a StoreEnd alone) never waits.
        assert!(w.try_take(0, 16.0, usize::MAX));
        // Then two rate × least round trips: 16 per ms × 10 ms × 2.
        let t0 = tokio::time::Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        w.answered(Duration::from_millis(10), s(0));
        assert_eq!(w.size(16.0, usize::MAX), 320);
        assert!(
            w.try_take(34, 16.0, usize::MAX),
            "room again under the larger window"
        );
        // A longer trip (the round queued on the way) does not grow it; a
        // shorter one shrinks it.
        w.answered(Duration::from_millis(18), s(1));
        assert_eq!(w.size(16.0, usize::MAX), 320);
        w.answered(Duration::from_millis(5), s(2));
        assert_eq!(w.size(16.0, usize::MAX), 160);
        // The least stands for 10 s, then the next trip replaces it.
        w.answered(Duration::from_millis(20), s(12));
        assert_eq!(w.size(16.0, usize::MAX), 160);
        w.answered(Duration::from_millis(20), s(13));
        assert_eq!(w.size(16.0, usize::MAX), 640);
        // Never below a few rounds: at the floor rate over a short trip.
        let mut fast = SendWindow::default();
        fast.answered(Duration::ZERO, s(0));
        assert_eq!(fast.size(Aimd::MIN, usize::MAX), SendWindow::MIN);
        // A serve waits for its report two least round trips plus the
        // slack given, at most a second.
        let q = Duration::from_millis(52);
        assert_eq!(SendWindow::default().report_wait(q), q);
        assert_eq!(w.report_wait(q), Duration::from_millis(40) + q);
        let mut far = SendWindow::default();
        far.answered(Duration::from_secs(3), s(0));
        assert_eq!(far.report_wait(q), Duration::from_secs(1));
    }

    #[test]
    fn a_path_is_slow_by_the_pace_of_its_complete_offers() {
        let mut p = PathIn::default();
        assert_eq!(p.slow(), None);
        // Small offers say nothing.
        p.offer_in(15, Duration::from_millis(10));
        assert_eq!(p.slow(), None);
        // 33 datagrams over 2 ms: 16 per ms, slow, once three such came.
        p.offer_in(33, Duration::from_millis(2));
        assert_eq!(p.per_ms(), Some(16.0));
        assert_eq!(p.slow(), None);
        p.offer_in(33, Duration::from_millis(2));
        p.offer_in(33, Duration::from_millis(2));
        assert_eq!(p.slow(), Some(true));
        // One offer handled in one batch changes nothing (averaging the
        // pace, it would have read thousands per ms).
        p.offer_in(33, Duration::ZERO);
        assert_eq!(p.per_ms(), Some(16.0));
        // Offers at a fast path's pace take over once they are most of the
        // last five; one handled late among them changes nothing.
        p.offer_in(33, Duration::from_micros(100));
        p.offer_in(33, Duration::from_micros(100));
        assert_eq!(p.slow(), Some(false));
        p.offer_in(33, Duration::from_millis(8));
        assert_eq!(p.per_ms(), Some(320.0));
        // The first round is spread only when every path known is slow.
        let spread = |paths: &[Option<bool>]| all_known_slow(paths.iter().copied());
        assert!(spread(&[Some(true), None]));
        assert!(spread(&[Some(true), Some(true)]));
        assert!(!spread(&[Some(true), Some(false)]));
        assert!(!spread(&[None, None]));
        assert!(!spread(&[]));
    }
}
