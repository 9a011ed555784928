//! Signed checkpoints of the chain head (Ed25519), publishable outside the database.

use super::chain::hex;
use super::entry::now_us;
use ring::digest;
use serde::Serialize;
use sqlx::PgPool;

/// A signed statement of the chain head, publishable outside the database.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub signed_at_us: i64,
    pub key_id: String,
    pub signature: Vec<u8>,
}

/// The signed message: `kubegate-audit-checkpoint:v1:<seq>:<hex hash>:<signed_at_us>`.
pub fn checkpoint_message(seq: i64, hash: &[u8], signed_at_us: i64) -> Vec<u8> {
    format!(
        "kubegate-audit-checkpoint:v1:{seq}:{}:{signed_at_us}",
        hex(hash)
    )
    .into_bytes()
}

/// An Ed25519 key for checkpoints, from a PKCS#8 PEM file.
pub struct CheckpointKey {
    pair: ring::signature::Ed25519KeyPair,
    pub key_id: String,
}

impl CheckpointKey {
    pub fn from_pem_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!(
                "KUBEGATE_AUDIT_SIGNING_KEY: cannot read {}: {e}",
                path.display()
            )
        })?;
        let der = pem::parse(text)
            .map_err(|e| anyhow::anyhow!("KUBEGATE_AUDIT_SIGNING_KEY: not PEM: {e}"))?;
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.contents())
            .map_err(|e| {
                anyhow::anyhow!("KUBEGATE_AUDIT_SIGNING_KEY: not an Ed25519 PKCS#8 key: {e}")
            })?;
        use ring::signature::KeyPair;
        let key_id =
            hex(&digest::digest(&digest::SHA256, pair.public_key().as_ref()).as_ref()[..8]);
        Ok(Self { pair, key_id })
    }

    pub fn public_key(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        self.pair.public_key().as_ref().to_vec()
    }

    /// Sign the current head and store the checkpoint.
    pub async fn sign_head(&self, pool: &PgPool) -> Result<Checkpoint, sqlx::Error> {
        let (seq, hash): (i64, Vec<u8>) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(pool)
                .await?;
        let signed_at_us = now_us();
        let signature = self
            .pair
            .sign(&checkpoint_message(seq, &hash, signed_at_us))
            .as_ref()
            .to_vec();
        let cp = Checkpoint {
            seq,
            hash,
            signed_at_us,
            key_id: self.key_id.clone(),
            signature,
        };
        sqlx::query("INSERT INTO audit_checkpoint (seq, hash, signed_at_us, key_id, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq, key_id) DO NOTHING")
            .bind(cp.seq)
            .bind(&cp.hash)
            .bind(cp.signed_at_us)
            .bind(&cp.key_id)
            .bind(&cp.signature)
            .execute(pool)
            .await?;
        Ok(cp)
    }
}

pub async fn checkpoints(pool: &PgPool) -> Result<Vec<Checkpoint>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, hash, signed_at_us, key_id, signature FROM audit_checkpoint ORDER BY seq",
    )
    .fetch_all(pool)
    .await
}

/// The raw Ed25519 public key from an SPKI PEM (`openssl pkey -pubout`).
pub fn public_key_from_pem(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let text =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let der =
        pem::parse(text).map_err(|e| anyhow::anyhow!("{} is not PEM: {e}", path.display()))?;
    // An Ed25519 SubjectPublicKeyInfo is a fixed 12-byte prefix and the 32-byte key.
    let bytes = der.contents();
    if bytes.len() != 44 {
        anyhow::bail!("{} is not an Ed25519 public key", path.display());
    }
    Ok(bytes[12..].to_vec())
}
