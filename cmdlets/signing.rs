//! Opening the minisign secret key that `-SigningKey` names, asking for its
//! password on the terminal or taking it from the environment.

use std::path::Path;

use containerimage_provider::feed::FeedSignature;
use containerimage_provider::progress::Reporter;
use containerimage_provider::signing::SigningKey;

use crate::cmdlet::{CmdError, Ctx};

/// The environment variable a script sets to the secret key's password, so
/// signing needs no terminal. Keys made with `minisign -G -W` have none.
pub const PASSWORD_VAR: &str = "CONTAINERIMAGE_SIGNING_KEY_PASSWORD";

/// Opens the secret key file `path`. An encrypted key's password comes from
/// [`PASSWORD_VAR`] when it is set, else from the terminal (`/dev/tty`).
pub fn open_signing_key(ctx: &Ctx, path: &str) -> Result<SigningKey, CmdError> {
    let file = Path::new(path.trim());
    let mut password = || -> Result<String, String> {
        if let Some(v) = std::env::var_os(PASSWORD_VAR) {
            return v
                .into_string()
                .map_err(|_| format!("{PASSWORD_VAR} is not valid UTF-8"));
        }
        rpassword::prompt_password(format!("Password for the secret key {}: ", file.display()))
            .map_err(|e| {
                format!(
                "the key is encrypted and there is no terminal to ask for its password on ({e}); \
                 set {PASSWORD_VAR}"
            )
            })
    };
    let key = SigningKey::open(file, &mut password).map_err(|e| {
        CmdError::from(e).hint(format!(
            "-SigningKey takes a minisign secret key file (made with `minisign -G`, or `minisign -G -W` \
             for one without a password); for an encrypted key, type its password when asked or set {PASSWORD_VAR}"
        ))
    })?;
    ctx.reporter().verbose(&format!(
        "Signing with the secret key {} (key ID {})",
        file.display(),
        key.id()
    ));
    Ok(key)
}

/// Says what became of a folder feed's signature: signed (with -Verbose),
/// or left stale, with how to sign it again.
pub fn report_feed_signature(ctx: &Ctx, feed_file: &Path, signature: &FeedSignature, again: &str) {
    match signature {
        FeedSignature::Signed(sig) => ctx.reporter().verbose(&format!(
            "Signed {} (signature {})",
            feed_file.display(),
            sig.display()
        )),
        FeedSignature::Stale(sig) => ctx.reporter().warn(&format!(
            "{} changed, so its signature {} no longer matches it: sources that pin the key will \
             refuse this feed until it is signed again. Sign it with {again}, or with \
             `minisign -S -s <secret key file> -m {}`",
            feed_file.display(),
            sig.display(),
            feed_file.display()
        )),
        FeedSignature::Untouched => {}
    }
}
