//! `dlrm-he demo`: the main job on the embedded default data (generated, not downloaded).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::infer_command::InferArgs;
use crate::keygen_command::KeygenArgs;
use crate::prepare::{CriteoArgs, SplitArg, SyntheticArgs};
use crate::quantize_command::QuantizeArgs;
use crate::session::{Session, SessionArgs, split_rows};
use crate::train_command::{TablesArg, TrainArgs};
use crate::training::{PresetArg, TrainSettings};

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Working directory for everything the demo writes (replaced if it holds an earlier demo).
    #[arg(long, default_value = "out/demo")]
    pub dir: PathBuf,
    /// Rows of synthetic Criteo-shaped data.
    #[arg(long, default_value_t = 200_000)]
    pub rows: u64,
    /// Fraction of the full Kaggle table sizes.
    #[arg(long, default_value_t = 0.001)]
    pub scale: f64,
    /// Held-out rows to run encrypted at the end.
    #[arg(long, default_value_t = 8)]
    pub encrypted_rows: usize,
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<()> {
    let raw = args.dir.join("synthetic-criteo.tsv");
    let prepared = args.dir.join("prepared");
    // Only a directory this command made is cleared, so a mistyped --dir cannot eat other data.
    if prepared.join(datasets::MANIFEST_FILE).exists() || raw.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("clearing the earlier demo in {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;

    println!("== 1/7 generate synthetic Criteo-shaped data");
    crate::prepare::generate(&SyntheticArgs {
        out: raw.clone(),
        rows: args.rows,
        scale: args.scale,
        seed: 1,
    })?;
    println!("== 2/7 prepare it (vocabularies, splits, manifest)");
    crate::prepare::run(crate::prepare::PrepareCommand::Criteo(CriteoArgs {
        input: raw,
        out: prepared.clone(),
        min_count: 2,
        max_table_size: None,
        max_rows: None,
        split: SplitArg::Random,
        val_fraction: 0.05,
        test_fraction: 0.05,
        seed: 0,
        skip_bad_rows: false,
    }))?;
    let model = args.dir.join("model");
    let quantized = args.dir.join("model.quantized.json");
    let keys = args.dir.join("keys");
    println!("== 3/7 train a criteo-small DLRM with digit tables (one epoch)");
    crate::train_command::train(TrainArgs {
        data: prepared.clone(),
        preset: PresetArg::CriteoSmall,
        config: None,
        tables: TablesArg::Preset,
        max_inputs: 256,
        roles: None,
        settings: TrainSettings {
            epochs: Some(1),
            ..TrainSettings::default()
        },
        out: model.clone(),
    })?;
    println!("== 4/7 quantize it into the integer model the encrypted executor runs");
    crate::quantize_command::quantize(QuantizeArgs {
        model: model.clone(),
        data: Some(prepared.clone()),
        calibration: None,
        out: quantized.clone(),
        calibration_rows: 20_000,
        parameter_set: fhe::ParameterSetId::default(),
        input_bits: None,
        max_weight_bits: None,
        activation_bits: None,
        max_lut_bits: None,
        embedding_bits: None,
        lookup_headroom_bits: None,
        square_bits: None,
        clean_sigmas: None,
        sanitise_output: crate::quantize_command::Switch::Off,
        compensated_rounding: crate::quantize_command::Switch::Off,
        qat_epochs: 0,
        qat_learning_rate: 1e-4,
        finetuned_out: None,
        simulate_seed: 1,
    })?;
    println!("== 5/7 generate keys");
    crate::keygen_command::keygen(KeygenArgs {
        out: keys.clone(),
        parameter_set: fhe::ParameterSetId::default(),
        // Step 7's ranked answer comes back packed.
        packing: true,
    })?;
    println!("== 6/7 encrypt held-out rows, run the model on ciphertexts, decrypt, compare");
    crate::infer_command::infer(InferArgs {
        session: SessionArgs {
            model: quantized.clone(),
            keys: keys.clone(),
            data: Some(prepared.clone()),
        },
        input: None,
        split: Some("test".into()),
        encoded: None,
        float_model: Some(model),
        rows: args.encrypted_rows,
        simulate_seed: 1,
        server: None,
        server_model: None,
        ca: None,
        token: None,
        candidates: None,
        max_candidates: 1000,
        roles: None,
    })?;
    println!(
        "\n== 7/7 one ranked request: the first test row's dense features and tables 0-12 (the user's, encrypted once) with the next {RANKED_CANDIDATES} test rows' tables 13-25 as candidates (public), the same model served with the illustrative 13/13 roles (docs/rank.md)"
    );
    let roles = std::path::Path::new(crate::roles_arg::CRITEO_SPLIT);
    let session = Session::open_with_roles(&quantized, &keys, Some(roles))?;
    let rows = split_rows(&prepared, "test", RANKED_CANDIDATES + 1)?;
    let (user, candidates) = rows.split_first().context("an empty test split")?;
    crate::infer_command::rank(&session, user, candidates, 1)
}

/// Candidates of the demo's ranked request.
const RANKED_CANDIDATES: usize = 20;
