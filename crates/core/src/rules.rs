//! The call rules: who rings, who joins, when a call ends. Pure functions of the
//! call, a command and the time; they return the next call and what to tell whom.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::model::*;

/// Settings the rules depend on.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub ring_timeout: Duration,
    /// Contacts one call may hold, guests included (`CALLHUB_MAX_CALL_CONTACTS`):
    /// every read and every ring of a call walks all of them.
    pub max_contacts: usize,
}

pub const DEFAULT_MAX_CONTACTS: usize = 500;

impl Default for Rules {
    fn default() -> Self {
        Rules {
            ring_timeout: Duration::seconds(60),
            max_contacts: DEFAULT_MAX_CONTACTS,
        }
    }
}

/// Why a contact's devices stop ringing (the WebSocket `ringingStopped` reasons).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum StopReason {
    AnsweredElsewhere,
    DeclinedElsewhere,
    /// The call ended before anyone but its creator answered.
    Cancelled,
    Missed,
    Ended,
}

/// What a transition asks the outside world to do, besides storing the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Contacts whose devices start ringing.
    pub rang: Vec<ContactId>,
    /// Contacts whose devices stop ringing, and why.
    pub stopped: Vec<(ContactId, StopReason)>,
}

/// A call after a command, with what it asks for. `events` past the old call's
/// length are new, and so are `contacts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub call: Call,
    pub outcome: Outcome,
}

/// Who asks: an account, with its rights.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: UserInfo,
}

impl Actor {
    fn is_admin_of(&self, call: &Call) -> bool {
        self.user.has_role(Role::Admin) && self.user.domain == call.domain
    }
}

/// A request to create a call, with contacts already resolved to accounts (teams
/// expanded) by the caller.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub call_id: Uuid,
    pub title: String,
    pub reason: CallReason,
    pub call_type: CallType,
    pub anonymous_join_allowed: bool,
    pub inform_others_directly: bool,
    pub planned_at: Option<DateTime<Utc>>,
    /// The account making the request.
    pub requester: UserInfo,
    /// `creatorUser` when it names someone else: the broker flow.
    pub on_behalf_of: Option<UserInfo>,
    pub invited: Vec<ContactSpec>,
    pub teams: Vec<Team>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the call is not visible to you")]
    NotVisible,
    #[error("the call has ended")]
    Ended,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("{0}")]
    Invalid(String),
}

/// Commands on an existing call.
#[derive(Debug, Clone)]
pub enum Command {
    /// Answer a ringing call or join a started one.
    Join(Actor),
    Decline(Actor),
    Leave(Actor),
    /// End the call for everyone (its creator, broker, or an admin).
    End(Actor),
    /// Invite contacts (teams already expanded into them); the teams are listed too.
    Invite(Actor, Vec<ContactSpec>, Vec<Team>),
    /// A participant's connections dropped and did not come back in time.
    Drop(ContactId),
    /// A guest with a valid link joins under a name of their choosing: a new
    /// anonymous contact, and its `Join`.
    JoinGuest {
        display_name: String,
    },
    /// A guest leaves (the contact its access token names).
    LeaveGuest(ContactId),
    /// Time has passed: ring timeouts and planned starts fall due.
    Tick,
}

/// Creates a call: `Created`, the creator's `Join` for an ordinary call that starts
/// now, and the first ringing.
pub fn create(new: NewCall, now: DateTime<Utc>) -> Result<Transition, CallError> {
    let broker = match &new.on_behalf_of {
        Some(creator) if creator.user_db_id != new.requester.user_db_id => {
            if !(new.requester.has_role(Role::Broker) || new.requester.has_role(Role::Admin)) {
                return Err(CallError::Forbidden(
                    "only a broker or admin may create a call on behalf of another user (creatorUser)",
                ));
            }
            Some(new.requester.user_db_id)
        }
        _ => None,
    };
    let creator = new.on_behalf_of.as_ref().unwrap_or(&new.requester);
    let planned = new.planned_at.filter(|&t| t > now);
    let mut call = Call {
        id: 0,
        call_id: new.call_id,
        domain: creator.domain.clone(),
        title: new.title,
        reason: new.reason,
        call_type: new.call_type,
        status: if planned.is_some() {
            CallStatus::Planned
        } else {
            CallStatus::Started
        },
        anonymous_join_allowed: new.anonymous_join_allowed,
        inform_others_directly: new.inform_others_directly,
        planned_at: new.planned_at,
        created_at: now,
        started_at: if planned.is_some() { None } else { Some(now) },
        ended_at: None,
        broker,
        ring_pending_at: planned,
        guest_token_hash: None,
        contacts: vec![Contact {
            id: CREATOR,
            origin: ContactOrigin::Creator,
            spec: creator.as_contact(),
            ringing_since: None,
        }],
        teams: new.teams,
        events: Vec::new(),
        version: 0,
    };
    for spec in new.invited {
        if find_same(&call, &spec).is_none() {
            add_contact(&mut call, ContactOrigin::Invited, spec);
        }
    }
    check_mesh_invitees(&call)?;

    let mut t = Transition {
        call,
        outcome: Outcome::default(),
    };
    t.push(EventType::Created, CREATOR, now);
    if t.call.status == CallStatus::Started {
        if t.call.broker.is_none() {
            t.push(EventType::Join, CREATOR, now);
        }
        if t.call.inform_others_directly {
            for id in t.call.ringable() {
                t.ring(id, now);
            }
        }
    }
    Ok(t)
}

impl Transition {
    /// Keeps the hash of the call's guest-link token, where the call allows
    /// anonymous join (elsewhere there is no link, and nothing is kept).
    pub fn with_guest_link(mut self, token_hash: String) -> Transition {
        if self.call.anonymous_join_allowed {
            self.call.guest_token_hash = Some(token_hash);
        }
        self
    }
}

/// Applies a command to a call. On error nothing is to be stored.
pub fn apply(
    call: &Call,
    command: Command,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<Transition, CallError> {
    // Clocks of several nodes may disagree a little; the log stays in time order.
    let now = call.events.last().map_or(now, |e| e.at.max(now));
    let mut t = Transition {
        call: call.clone(),
        outcome: Outcome::default(),
    };
    match command {
        Command::Join(actor) => t.join(&actor, now)?,
        Command::Decline(actor) => t.decline(&actor, now)?,
        Command::Leave(actor) => {
            let id = t.participant(&actor)?;
            t.leave(id, now)?
        }
        Command::JoinGuest { display_name } => t.join_guest(display_name, now)?,
        Command::LeaveGuest(id) => {
            t.open()?;
            let guest = (1..=t.call.contacts.len() as ContactId).contains(&id)
                && t.call.contact(id).origin == ContactOrigin::Guest;
            if !guest {
                return Err(CallError::Conflict("no such guest in this call"));
            }
            t.leave(id, now)?
        }
        Command::Drop(id) => {
            if t.call.status != CallStatus::Ended && t.call.is_joined(id) {
                t.leave(id, now)?
            }
        }
        Command::End(actor) => {
            t.visible(&actor)?;
            t.open()?;
            let c = &t.call;
            let own = c.contact(CREATOR).user_db_id() == Some(actor.user.user_db_id);
            if !(own || c.broker == Some(actor.user.user_db_id) || actor.is_admin_of(c)) {
                return Err(CallError::Forbidden(
                    "only the call's creator, its broker or an admin may end it",
                ));
            }
            let by = c
                .contact_of_user(actor.user.user_db_id)
                .map_or(CREATOR, |c| c.id);
            t.end(by, now);
        }
        Command::Invite(actor, specs, teams) => {
            t.invite(&actor, specs, now)?;
            for team in teams {
                if !t.call.teams.iter().any(|k| k.id == team.id) {
                    t.call.teams.push(team);
                }
            }
        }
        Command::Tick => t.tick(now, rules),
    }
    let added = t.call.contacts.len() > call.contacts.len();
    if added && t.call.contacts.len() > rules.max_contacts {
        return Err(CallError::Conflict(
            "the call already holds as many contacts as allowed (CALLHUB_MAX_CALL_CONTACTS)",
        ));
    }
    Ok(t)
}

impl Call {
    /// Invitees with an account who may ring now: in the broker flow the experts
    /// only (never the broker, and the creator once an expert answers).
    fn ringable(&self) -> Vec<ContactId> {
        self.contacts
            .iter()
            .filter(|c| {
                c.origin == ContactOrigin::Invited && c.user_db_id().is_some() && !self.is_broker(c)
            })
            .map(|c| c.id)
            .collect()
    }

    fn is_broker(&self, c: &Contact) -> bool {
        self.broker.is_some() && c.user_db_id() == self.broker
    }

    /// In the broker flow, the invitees who are neither the creator nor the broker.
    fn experts(&self) -> impl Iterator<Item = &Contact> {
        self.contacts
            .iter()
            .filter(|c| c.origin == ContactOrigin::Invited && !self.is_broker(c))
    }

    fn anyone_ringing(&self) -> bool {
        self.contacts.iter().any(|c| c.ringing_since.is_some())
    }
}

fn find_same(call: &Call, spec: &ContactSpec) -> Option<ContactId> {
    call.contacts
        .iter()
        .find(|c| match spec.user_db_id {
            Some(user) => c.user_db_id() == Some(user),
            None => {
                c.user_db_id().is_none()
                    && c.origin != ContactOrigin::Guest
                    && c.spec.email == spec.email
                    && c.spec.phone_number == spec.phone_number
            }
        })
        .map(|c| c.id)
}

fn add_contact(call: &mut Call, origin: ContactOrigin, spec: ContactSpec) -> ContactId {
    let id = call.contacts.len() as ContactId + 1;
    call.contacts.push(Contact {
        id,
        origin,
        spec,
        ringing_since: None,
    });
    id
}

/// A MESH call is 1:1: one invitee besides the broker who arranged it.
fn check_mesh_invitees(call: &Call) -> Result<(), CallError> {
    if call.call_type == CallType::Mesh && call.experts().count() > 1 {
        return Err(CallError::Invalid(format!(
            "invitedContacts: a MESH call is 1:1 and takes one invitee, not {}",
            call.experts().count()
        )));
    }
    Ok(())
}

impl Transition {
    fn push(&mut self, kind: EventType, contact: ContactId, at: DateTime<Utc>) {
        self.call.events.push(Event {
            id: 0,
            kind,
            at,
            contact,
        });
    }

    fn ring(&mut self, id: ContactId, now: DateTime<Utc>) {
        let c = self.call.contact_mut(id);
        if c.ringing_since.is_none() {
            c.ringing_since = Some(now);
            self.outcome.rang.push(id);
        }
    }

    fn stop_ringing(&mut self, id: ContactId, reason: StopReason) -> bool {
        let rang = self.call.contact_mut(id).ringing_since.take().is_some();
        if rang {
            self.outcome.rang.retain(|&c| c != id);
            self.outcome.stopped.push((id, reason));
        }
        rang
    }

    fn visible(&self, actor: &Actor) -> Result<(), CallError> {
        if self.call.visible_to(&actor.user) {
            Ok(())
        } else {
            Err(CallError::NotVisible)
        }
    }

    fn open(&self) -> Result<(), CallError> {
        if self.call.status == CallStatus::Ended {
            Err(CallError::Ended)
        } else {
            Ok(())
        }
    }

    /// The actor's contact, which must exist.
    fn participant(&self, actor: &Actor) -> Result<ContactId, CallError> {
        self.visible(actor)?;
        self.open()?;
        self.call
            .contact_of_user(actor.user.user_db_id)
            .map(|c| c.id)
            .ok_or(CallError::Conflict("you are not a contact of this call"))
    }

    /// The actor's contact, added (as one who joined uninvited) if the actor is a
    /// broker or admin the call does not list.
    fn contact_for(&mut self, actor: &Actor) -> ContactId {
        match self.call.contact_of_user(actor.user.user_db_id) {
            Some(c) => c.id,
            None => add_contact(
                &mut self.call,
                ContactOrigin::Joined,
                actor.user.as_contact(),
            ),
        }
    }

    fn join(&mut self, actor: &Actor, now: DateTime<Utc>) -> Result<(), CallError> {
        self.visible(actor)?;
        self.open()?;
        if let Some(c) = self.call.contact_of_user(actor.user.user_db_id)
            && self.call.is_joined(c.id)
        {
            return Ok(()); // joining twice is answered, not repeated
        }
        if self.call.call_type == CallType::Mesh && self.call.joined().len() >= 2 {
            return Err(CallError::Conflict(
                "a MESH call is 1:1 and already has two participants",
            ));
        }
        let id = self.contact_for(actor);
        if self.call.status == CallStatus::Planned {
            self.call.status = CallStatus::Started;
            self.call.started_at = Some(now);
        }
        self.push(EventType::Join, id, now);
        self.stop_ringing(id, StopReason::AnsweredElsewhere);
        // The broker flow: the creator rings once the first expert answers.
        let c = self.call.contact(id);
        if self.call.broker.is_some()
            && c.origin == ContactOrigin::Invited
            && !self.call.is_broker(c)
            && !self.call.ever_joined(CREATOR)
            && !self
                .call
                .events
                .iter()
                .any(|e| e.kind == EventType::Ringing && e.contact == CREATOR)
        {
            self.push(EventType::Ringing, CREATOR, now);
            self.ring(CREATOR, now);
        }
        Ok(())
    }

    fn join_guest(&mut self, display_name: String, now: DateTime<Utc>) -> Result<(), CallError> {
        if !self.call.anonymous_join_allowed {
            return Err(CallError::Forbidden(
                "this call does not allow anonymous join",
            ));
        }
        self.open()?;
        if self.call.call_type == CallType::Mesh && self.call.joined().len() >= 2 {
            return Err(CallError::Conflict(
                "a MESH call is 1:1 and already has two participants",
            ));
        }
        let spec = ContactSpec {
            display_name: Some(display_name),
            ..ContactSpec::default()
        };
        let id = add_contact(&mut self.call, ContactOrigin::Guest, spec);
        if self.call.status == CallStatus::Planned {
            self.call.status = CallStatus::Started;
            self.call.started_at = Some(now);
        }
        self.push(EventType::Join, id, now);
        Ok(())
    }

    fn decline(&mut self, actor: &Actor, now: DateTime<Utc>) -> Result<(), CallError> {
        let id = self.participant(actor)?;
        if self.call.is_joined(id) {
            return Err(CallError::Conflict(
                "you are in the call: leave it instead of declining",
            ));
        }
        let ringing = self.call.contact(id).ringing_since.is_some();
        if !ringing && self.call.last_answer(id) == Some(EventType::Declined) {
            return Ok(()); // declining twice is answered, not repeated
        }
        self.push(EventType::Declined, id, now);
        self.stop_ringing(id, StopReason::DeclinedElsewhere);
        self.settle_unanswered(id, now);
        Ok(())
    }

    fn leave(&mut self, id: ContactId, now: DateTime<Utc>) -> Result<(), CallError> {
        if !self.call.is_joined(id) {
            return Err(CallError::Conflict("you are not in the call"));
        }
        self.push(EventType::Leave, id, now);
        let last_left =
            self.call.joined().is_empty() && self.call.planned_at.is_none_or(|t| t <= now);
        if self.call.call_type == CallType::Mesh || last_left {
            self.end(id, now);
        }
        Ok(())
    }

    fn invite(
        &mut self,
        actor: &Actor,
        specs: Vec<ContactSpec>,
        now: DateTime<Utc>,
    ) -> Result<(), CallError> {
        self.visible(actor)?;
        self.open()?;
        let mut invited = Vec::new();
        for spec in specs {
            let id = match find_same(&self.call, &spec) {
                Some(id) => {
                    let c = self.call.contact(id);
                    if self.call.is_joined(id)
                        || c.ringing_since.is_some()
                        || c.origin == ContactOrigin::Creator
                    {
                        continue;
                    }
                    if c.origin == ContactOrigin::Joined {
                        self.call.contact_mut(id).origin = ContactOrigin::Invited;
                    }
                    id
                }
                None => add_contact(&mut self.call, ContactOrigin::Invited, spec),
            };
            if !invited.contains(&id) {
                invited.push(id);
            }
        }
        check_mesh_invitees(&self.call)?;
        for id in invited {
            self.push(EventType::Invited, id, now);
            let c = self.call.contact(id);
            let rings = c.user_db_id().is_some() && !self.call.is_broker(c);
            // A planned call's invitees ring at its time, with the others.
            if rings && self.call.ring_pending_at.is_none() {
                self.ring(id, now);
            }
        }
        Ok(())
    }

    fn tick(&mut self, now: DateTime<Utc>, rules: &Rules) {
        if self.call.status == CallStatus::Ended {
            return;
        }
        let due: Vec<ContactId> = self
            .call
            .contacts
            .iter()
            .filter(|c| {
                c.ringing_since
                    .is_some_and(|t| t + rules.ring_timeout <= now)
            })
            .map(|c| c.id)
            .collect();
        for id in due {
            if self.call.status == CallStatus::Ended {
                break;
            }
            self.push(EventType::Missed, id, now);
            self.stop_ringing(id, StopReason::Missed);
            self.settle_unanswered(id, now);
        }
        if self.call.status != CallStatus::Ended
            && self.call.ring_pending_at.is_some_and(|t| t <= now)
        {
            self.call.ring_pending_at = None;
            if self.call.status == CallStatus::Planned {
                self.call.status = CallStatus::Started;
                self.call.started_at = Some(now);
            }
            let mut ring: Vec<ContactId> = self.call.ringable();
            if self.call.broker.is_none() {
                ring.insert(0, CREATOR); // a planned meeting reminds its creator too
            }
            if !self.call.inform_others_directly {
                ring.clear();
            }
            for id in ring {
                // Who joined early, or declined ahead of time, is not rung.
                let answered = matches!(
                    self.call.last_answer(id),
                    Some(EventType::Declined | EventType::Join)
                );
                if !answered && !self.call.is_joined(id) {
                    self.push(EventType::Ringing, id, now);
                    self.ring(id, now);
                }
            }
        }
    }

    /// After a decline or a miss: a call that nobody answered ends. In the broker
    /// flow that is every expert, and the creator's own refusal ends it too.
    fn settle_unanswered(&mut self, by: ContactId, now: DateTime<Utc>) {
        let call = &self.call;
        let refused = |c: &Contact| {
            matches!(
                call.last_answer(c.id),
                Some(EventType::Declined | EventType::Missed)
            )
        };
        let nobody_answered = if call.broker.is_some() {
            by == CREATOR
                || call.experts().all(|c| {
                    c.ringing_since.is_none()
                        && !call.ever_joined(c.id)
                        && (refused(c) || c.user_db_id().is_none())
                })
        } else {
            let invitees: Vec<&Contact> = call
                .contacts
                .iter()
                .filter(|c| c.origin == ContactOrigin::Invited && c.user_db_id().is_some())
                .collect();
            !call.anyone_ringing()
                && invitees
                    .iter()
                    .all(|c| !call.ever_joined(c.id) && refused(c))
                && call.ring_pending_at.is_none()
        };
        if nobody_answered {
            self.end(CREATOR, now);
        }
    }

    /// Ends the call: ringing stops, those still in leave, then `Ended`.
    fn end(&mut self, by: ContactId, now: DateTime<Utc>) {
        let answered = self
            .call
            .contacts
            .iter()
            .any(|c| c.id != CREATOR && self.call.ever_joined(c.id));
        let reason = if answered {
            StopReason::Ended
        } else {
            StopReason::Cancelled
        };
        for id in 1..=self.call.contacts.len() as ContactId {
            self.stop_ringing(id, reason);
        }
        for id in self.call.joined() {
            self.push(EventType::Leave, id, now);
        }
        self.push(EventType::Ended, by, now);
        self.call.status = CallStatus::Ended;
        self.call.ended_at = Some(now);
        self.call.ring_pending_at = None;
    }
}
