//! Participants who vanish: when a user's last socket on this node closes, they
//! have `CALLHUB_REJOIN_GRACE_SECS` to come back before their `Leave` is written
//! (and the call ends by its rules if they were the last).

use std::sync::Arc;

use crate::app::App;

pub fn socket_closed(app: Arc<App>, user: i64) {
    if app.hub.is_connected(user) {
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(app.config.rejoin_grace).await;
        if !app.hub.is_connected(user) {
            crate::ws::drop_participant(&app, user).await;
        }
    });
}
