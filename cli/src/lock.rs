//! `moat lock` (pin every plugin by blake3 in the lockfile) and `moat sign` (a publisher's
//! ed25519 signature of plugin files, and the key pair to make them with).

use anyhow::{bail, Context, Result};
use moat::audit::checkpoint::KeyFiles;
use moat::plugin::trust::{signature_path, Lockfile};
use moat::Config;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct SignArgs {
    /// The publisher's secret key file (owner-only, as `--new-key` makes it)
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Make a new key pair: FILE and FILE.pub (never replacing one), then sign any files given
    #[arg(long)]
    new_key: bool,
    /// Component files to sign; each gets its signature in FILE.sig beside it
    files: Vec<PathBuf>,
}

/// Loads every plugin of `config` (not locked, audit off) and pins each in the lockfile.
/// Writes nothing if any file does not load: a lockfile pins all of the plugins or none.
pub fn lock(mut config: Config) -> Result<()> {
    config.plugins.locked = false;
    config.audit.enabled = false;
    let at = config.plugins.lockfile.clone();
    let (host, errors) =
        moat::Host::new(config).map_err(|e| anyhow::anyhow!("cannot start: {e:#}"))?;
    if !errors.is_empty() {
        for error in &errors {
            eprintln!("error: {error}");
        }
        bail!(
            "{} not written: {} plugin file(s) do not load; fix or remove them, then lock again",
            at.display(),
            errors.len()
        );
    }
    let registry = host.registry();
    let tools = registry.plugins().iter().map(|p| (p.path.clone(), p.hash));
    let policies = host.policies().current();
    let guards = policies.iter().map(|p| (p.path.clone(), p.hash));
    let files: Vec<(PathBuf, blake3::Hash)> = tools.chain(guards).collect();
    let lock = Lockfile::pinning(&at, &files);
    write_atomically(&at, lock.to_text().as_bytes())?;
    println!(
        "{}: pinned {} plugin file(s) ({} tool, {} policy)",
        at.display(),
        lock.plugins.len(),
        registry.plugins().len(),
        policies.len()
    );
    Ok(())
}

pub fn sign(args: SignArgs) -> Result<()> {
    let keys = KeyFiles::new(args.key.clone());
    if args.new_key {
        let public = keys.create()?;
        let public = hex::encode(public.as_bytes());
        println!(
            "new publisher key: {} (public key in {})",
            keys.secret.display(),
            keys.public.display()
        );
        println!("to trust it, in moat.toml:\n\n[plugins]\ntrusted_keys = [\"{public}\"]\n");
    } else if args.files.is_empty() {
        bail!("nothing to sign: give the component files to sign (or --new-key to make a key)");
    }
    if args.files.is_empty() {
        return Ok(());
    }
    let key = keys.load()?;
    for file in &args.files {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        if !wasmparser::Parser::is_component(&bytes) {
            bail!("{}: not a WebAssembly component; nothing signed", file.display());
        }
        let sig = signature_path(file);
        write_atomically(&sig, moat::plugin::trust::sign(&key, &bytes).as_bytes())?;
        println!("{}: signed ({})", file.display(), sig.display());
    }
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path`, synced, then renamed over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let fail = || format!("cannot write {}", path.display());
    let mut temporary = tempfile::NamedTempFile::new_in(dir).with_context(fail)?;
    temporary.write_all(bytes).with_context(fail)?;
    temporary.as_file().sync_all().with_context(fail)?;
    temporary.persist(path).with_context(fail)?;
    Ok(())
}
