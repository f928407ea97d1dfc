//! What a chaos run must leave behind, checked over what it observed: a pure function, so
//! each invariant is tested on its own.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

/// How the producer answered one POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 201 or 200: the transaction exists and will be carried to its end.
    Accepted,
    /// 503: it does not exist anywhere, ever.
    Refused,
    /// No answer (a killed producer, a timeout) or another status: it may or may not exist.
    Unknown,
}

/// What the run observed, once everything settled.
#[derive(Debug, Default)]
pub struct Observed {
    /// Each POSTed id: the client app (index) that sent it and the producer's answer.
    pub posted: HashMap<Uuid, (usize, Answer)>,
    /// Every row: its status and its client app (index), as Postgres has it.
    pub rows: HashMap<Uuid, (String, usize)>,
    /// What the third party holds, by id.
    pub ledger: HashMap<Uuid, String>,
    /// Creates the third party received for an id it already held.
    pub resubmissions: u64,
    /// The statuses each client app (index) was told, by id.
    pub told: Vec<HashMap<Uuid, Vec<String>>>,
    /// Work still owed in Postgres (pending rows, undelivered notifications).
    pub owed: i64,
    /// History entries, notifications and delivery attempts without their parent row (they
    /// have no foreign key: each is written from its parent in one statement).
    pub orphans: i64,
}

/// The first invariant a run broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{invariant}: {detail}")]
pub struct Violation {
    /// Which.
    pub invariant: &'static str,
    /// Where.
    pub detail: String,
}

fn violated(invariant: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { invariant, detail })
}

/// Checks every invariant, in order; the first broken one.
pub fn check(o: &Observed) -> Result<(), Violation> {
    if o.owed != 0 {
        return violated(
            "nothing owed",
            format!("{} pieces of work still owed", o.owed),
        );
    }
    if o.orphans != 0 {
        return violated(
            "every record has its parent",
            format!("{} rows without theirs", o.orphans),
        );
    }
    for (id, (app, answer)) in &o.posted {
        let row = o.rows.get(id);
        match (answer, row) {
            (Answer::Accepted, None) => return violated("every 201/200 exists", id.to_string()),
            (Answer::Refused, Some(_)) => return violated("no 503'd id exists", id.to_string()),
            (Answer::Refused, None) if o.ledger.contains_key(id) => {
                return violated("no 503'd id exists", format!("{id} is in the ledger"));
            }
            _ => {}
        }
        if let Some((_, owner)) = row
            && owner != app
        {
            return violated("each row its sender's", format!("{id}: {owner} vs {app}"));
        }
    }
    for (id, (status, app)) in &o.rows {
        if !o.posted.contains_key(id) {
            return violated("no row nobody posted", id.to_string());
        }
        if status == "pending" {
            return violated("every row terminal", id.to_string());
        }
        match (status.as_str(), o.ledger.get(id)) {
            ("failed", None) => {}
            ("failed", Some(theirs)) => {
                return violated(
                    "ledger equals ours",
                    format!("{id}: failed, theirs {theirs}"),
                );
            }
            (ours, Some(theirs)) if ours == theirs => {}
            (ours, theirs) => {
                return violated(
                    "ledger equals ours",
                    format!("{id}: {ours}, theirs {theirs:?}"),
                );
            }
        }
        let told = o.told.get(*app).and_then(|t| t.get(id));
        match told {
            Some(told) if !told.is_empty() && told.iter().all(|s| s == status) => {}
            _ => {
                return violated(
                    "each client app told exactly its status",
                    format!("{id}: {status}, told {told:?}"),
                );
            }
        }
        for (other, heard) in o.told.iter().enumerate() {
            if other != *app && heard.contains_key(id) {
                return violated("nobody told another's", format!("{id} told to {other}"));
            }
        }
    }
    let ours: HashSet<&Uuid> = o.rows.keys().collect();
    if let Some(id) = o.ledger.keys().find(|id| !ours.contains(id)) {
        return violated("ledger equals ours", format!("{id} held there, not here"));
    }
    if o.resubmissions != 0 {
        return violated(
            "no id submitted twice",
            format!("{} creates of held ids", o.resubmissions),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One accepted transaction of client app 0, completed and told; one refused.
    fn healthy() -> (Observed, Uuid, Uuid) {
        let (a, r) = (Uuid::now_v7(), Uuid::now_v7());
        let mut o = Observed::default();
        o.posted.insert(a, (0, Answer::Accepted));
        o.posted.insert(r, (1, Answer::Refused));
        o.rows.insert(a, ("completed".into(), 0));
        o.ledger.insert(a, "completed".into());
        o.told = vec![
            HashMap::from([(a, vec!["completed".into()])]),
            HashMap::new(),
        ];
        (o, a, r)
    }

    fn broken(o: &Observed) -> &'static str {
        check(o).expect_err("a violation").invariant
    }

    #[test]
    fn a_healthy_run_passes() {
        assert_eq!(check(&healthy().0), Ok(()));
    }

    /// Each breach, as a change to a healthy run, and the invariant that must catch it.
    type Breach = fn(&mut Observed, Uuid, Uuid);

    #[test]
    fn each_invariant_catches_its_breach() {
        let cases: [(Breach, &str); 12] = [
            (|o, _, _| o.owed = 1, "nothing owed"),
            (|o, _, _| o.orphans = 1, "every record has its parent"),
            (|o, a, _| _ = o.rows.remove(&a), "every 201/200 exists"),
            (
                |o, _, r| _ = o.ledger.insert(r, "completed".into()),
                "no 503'd id exists",
            ),
            (
                |o, a, _| _ = o.rows.insert(a, ("pending".into(), 0)),
                "every row terminal",
            ),
            (
                |o, a, _| _ = o.ledger.insert(a, "declined".into()),
                "ledger equals ours",
            ),
            (
                |o, a, _| _ = o.rows.insert(a, ("failed".into(), 0)),
                "ledger equals ours",
            ),
            (
                |o, a, _| _ = o.told[0].insert(a, vec!["completed".into(), "declined".into()]),
                "each client app told exactly its status",
            ),
            (
                |o, a, _| _ = o.told[1].insert(a, vec![]),
                "nobody told another's",
            ),
            (|o, _, _| o.resubmissions = 1, "no id submitted twice"),
            (
                |o, _, _| _ = o.ledger.insert(Uuid::now_v7(), "completed".into()),
                "ledger equals ours",
            ),
            (
                |o, _, _| _ = o.rows.insert(Uuid::now_v7(), ("completed".into(), 0)),
                "no row nobody posted",
            ),
        ];
        for (breach, invariant) in cases {
            let (mut o, a, r) = healthy();
            breach(&mut o, a, r);
            assert_eq!(broken(&o), invariant);
        }
    }
}
