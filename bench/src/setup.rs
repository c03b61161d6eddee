//! Accounts and access tokens for the load, made straight in the store: logging
//! 10,000 users in through argon2 would measure argon2, not calls.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use callhub_core::Role;
use callhub_core::text::{DisplayName, Domain, Email, UserId};
use callhub_server::auth::{Tokens, hash_password, load_or_make_secret, random_token, token_hash};
use callhub_store::{NewUser, PoolSettings, SqlStore, Store, StoreError};

pub async fn run(
    database_url: &str,
    data_dir: &Path,
    users: usize,
    tokens: &Path,
    mail: bool,
) -> anyhow::Result<()> {
    let store = SqlStore::connect(
        database_url,
        &PoolSettings::default(),
        chrono::Duration::seconds(60),
    )
    .await?;
    let secret = load_or_make_secret(None, data_dir)?;
    let day = Duration::from_secs(24 * 3600);
    let signer = Tokens::new(&secret, day, day);
    let hash = hash_password("bench-password".into()).await?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(tokens)?);
    let expires = chrono::Utc::now() + chrono::Duration::days(1);
    for i in 0..users {
        let user_id = format!("u{i}");
        let new = NewUser {
            domain: bench_domain(),
            user_id: UserId::parse("userId", &user_id)?,
            display_name: DisplayName::parse("displayName", &person(i))?,
            email: if mail {
                Some(Email::parse(
                    "email",
                    &format!(
                        "{}.{i}@plant-{}.example",
                        person(i).to_lowercase().replace(' ', "."),
                        i % 7
                    ),
                )?)
            } else {
                None
            },
            phone_number: None,
            roles: vec![Role::User],
            password_hash: hash.clone(),
        };
        let user = match store.create_user(new).await {
            Ok(u) => u,
            Err(StoreError::Conflict(_)) => store
                .user_by_name(&bench_domain(), &UserId::parse("userId", &user_id)?)
                .await?
                .expect("the user exists"),
            Err(e) => return Err(e.into()),
        };
        let family = uuid::Uuid::new_v4().to_string();
        store
            .start_token_family(
                &family,
                user.user_db_id,
                &token_hash(&random_token()),
                expires,
            )
            .await?;
        let token = signer.issue(user.user_db_id, &family)?;
        writeln!(
            out,
            "{}",
            serde_json::json!({"user": user.user_db_id, "userId": user_id, "token": token})
        )?;
    }
    out.flush()?;
    store.close().await;
    Ok(())
}

/// The domain every benchmark account lives in.
pub fn bench_domain() -> Domain {
    Domain::parse("domain", "bench").expect("a valid domain")
}

const FIRST: [&str; 50] = [
    "Anna", "Ben", "Clara", "David", "Elif", "Farid", "Greta", "Hannes", "Ines", "Jonas", "Katrin",
    "Lukas", "Mara", "Nico", "Olga", "Paul", "Quentin", "Rosa", "Stefan", "Tanja", "Uwe", "Vera",
    "Wolfgang", "Xenia", "Yusuf", "Zoe", "Aylin", "Bernd", "Chiara", "Dennis", "Emma", "Florian",
    "Gül", "Heike", "Igor", "Jana", "Kai", "Lea", "Mehmet", "Nina", "Oskar", "Petra", "Ralf",
    "Sophie", "Timo", "Ute", "Viktor", "Wiebke", "Yannick", "Zeynep",
];
const LAST: [&str; 40] = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Braun",
    "Zimmermann",
    "Krüger",
    "Hartmann",
    "Lange",
    "Werner",
    "Krause",
    "Lehmann",
    "Köhler",
    "Herrmann",
    "König",
    "Walter",
    "Mayer",
    "Huber",
    "Kaiser",
    "Fuchs",
    "Peters",
    "Lang",
    "Scholz",
    "Möller",
    "Weiß",
    "Jung",
    "Hahn",
];

/// A plausible name for bench user `i` (the directory's benchmark searches them):
/// 2,000 first-and-last pairs, numbered beyond that as people share names.
pub fn person(i: usize) -> String {
    let pair = i % (FIRST.len() * LAST.len());
    let name = format!("{} {}", FIRST[pair % FIRST.len()], LAST[pair / FIRST.len()]);
    match i / (FIRST.len() * LAST.len()) {
        0 => name,
        n => format!("{name} {}", n + 1),
    }
}
