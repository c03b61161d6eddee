//! The directory of each domain, held in memory: a few hundred bytes per account,
//! searched by substring in name order in microseconds whatever the needle. A
//! listing is reloaded when the store's directory version moved (every new account
//! or team bumps it, on any node), so new people show up at once everywhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use callhub_core::{Team, UserInfo};

/// One domain's accounts and teams, sorted by name.
pub(crate) struct Listing {
    version: i64,
    /// (lower-case id, name and email; lower-case name; the account)
    people: Vec<(String, String, UserInfo)>,
    teams: Vec<(String, Team)>,
}

impl Listing {
    pub(crate) fn new(version: i64, users: Vec<UserInfo>, teams: Vec<Team>) -> Listing {
        let mut people: Vec<(String, String, UserInfo)> = users
            .into_iter()
            .map(|u| {
                let text = format!(
                    "{} {} {}",
                    u.user_id,
                    u.display_name,
                    u.email.as_deref().unwrap_or_default()
                )
                .to_lowercase();
                (text, u.display_name.to_lowercase(), u)
            })
            .collect();
        people.sort_by(|a, b| (&a.1, a.2.user_db_id).cmp(&(&b.1, b.2.user_db_id)));
        let mut teams: Vec<(String, Team)> = teams
            .into_iter()
            .map(|t| (t.name.to_lowercase(), t))
            .collect();
        teams.sort_by(|a, b| (&a.0, a.1.id).cmp(&(&b.0, b.1.id)));
        Listing {
            version,
            people,
            teams,
        }
    }

    /// At most `size` accounts and `size` teams whose text contains `needle`
    /// (lower case; empty: all), by name.
    pub(crate) fn search(&self, needle: &str, size: usize) -> (Vec<UserInfo>, Vec<Team>) {
        let people = self
            .people
            .iter()
            .filter(|(text, _, _)| text.contains(needle))
            .take(size)
            .map(|(_, _, u)| u.clone())
            .collect();
        let teams = self
            .teams
            .iter()
            .filter(|(name, _)| name.contains(needle))
            .take(size)
            .map(|(_, t)| t.clone())
            .collect();
        (people, teams)
    }
}

/// The listings of the domains searched so far.
#[derive(Default)]
pub(crate) struct DirectoryCache {
    domains: Mutex<HashMap<String, Arc<Listing>>>,
}

impl DirectoryCache {
    /// The domain's listing if it is as new as `version`.
    pub(crate) fn get(&self, domain: &str, version: i64) -> Option<Arc<Listing>> {
        let domains = self.domains.lock().expect("directory lock");
        domains
            .get(domain)
            .filter(|l| DirectoryCache::current(l, version))
            .cloned()
    }

    /// The domain's newest listing held, whatever its version.
    pub(crate) fn latest(&self, domain: &str) -> Option<Arc<Listing>> {
        self.domains
            .lock()
            .expect("directory lock")
            .get(domain)
            .cloned()
    }

    /// Whether `listing` is as new as `version`.
    pub(crate) fn current(listing: &Listing, version: i64) -> bool {
        listing.version >= version
    }

    pub(crate) fn put(&self, domain: &str, listing: Arc<Listing>) {
        let mut domains = self.domains.lock().expect("directory lock");
        let newer = domains
            .get(domain)
            .is_none_or(|old| old.version <= listing.version);
        if newer {
            domains.insert(domain.to_owned(), listing);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callhub_core::Role;

    fn user(id: i64, user_id: &str, name: &str, email: Option<&str>) -> UserInfo {
        UserInfo {
            user_db_id: id,
            user_id: user_id.into(),
            domain: "d".into(),
            display_name: name.into(),
            email: email.map(Into::into),
            phone_number: None,
            roles: vec![Role::User],
        }
    }

    #[test]
    fn search_finds_substrings_of_id_name_or_email_in_name_order() {
        let listing = Listing::new(
            1,
            vec![
                user(1, "zed", "Zoë Ämter", Some("z@plant.example")),
                user(2, "bob", "Bob", None),
                user(3, "al", "alice", Some("alice@plant.example")),
            ],
            vec![Team {
                id: 1,
                name: "Pump Experts".into(),
                domain: "d".into(),
            }],
        );
        let ids = |(people, _): (Vec<UserInfo>, Vec<Team>)| {
            people.iter().map(|u| u.user_db_id).collect::<Vec<_>>()
        };
        assert_eq!(
            ids(listing.search("", 10)),
            [3, 2, 1],
            "by name, ignoring case"
        );
        assert_eq!(ids(listing.search("plant", 10)), [3, 1], "by email");
        assert_eq!(ids(listing.search("zoë ä", 10)), [1], "beyond ASCII");
        assert_eq!(ids(listing.search("", 2)), [3, 2], "at most size");
        assert_eq!(listing.search("expert", 10).1.len(), 1);
        assert!(listing.search("bob", 10).1.is_empty());
    }

    #[test]
    fn an_older_listing_never_replaces_a_newer_one() {
        let cache = DirectoryCache::default();
        cache.put("d", Arc::new(Listing::new(5, vec![], vec![])));
        cache.put("d", Arc::new(Listing::new(4, vec![], vec![])));
        assert!(cache.get("d", 5).is_some());
        assert!(cache.get("d", 6).is_none(), "a newer version reloads");
    }
}
