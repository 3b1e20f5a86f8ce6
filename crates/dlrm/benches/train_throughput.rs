//! Training throughput (samples/s) of the `criteo-small` and `criteo-dlrm` presets on
//! generated Criteo-shaped data (scale 0.001 cardinalities), one epoch each after a warm-up.
//!
//! `cargo bench -p dlrm --bench train_throughput [-- ROWS]` (default 200,000 rows).

use dlrm::{Dlrm, ModelPreset, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir()?;
    let tsv = dir.path().join("synthetic.tsv");
    let options = datasets::synthetic::SyntheticOptions {
        rows,
        ..Default::default()
    };
    datasets::synthetic::generate(&options, &tsv, &datasets::NoProgress)?;
    let prepared = dir.path().join("prepared");
    datasets::criteo::prepare(&tsv, &prepared, &Default::default(), &datasets::NoProgress)?;
    let dataset = datasets::PreparedDataset::open(&prepared)?;
    let train = dataset.load_split("train")?;
    let table_rows = dataset.manifest().table_sizes();
    println!(
        "{} training rows, {} threads",
        train.rows(),
        rayon::current_num_threads()
    );
    for (name, preset, share) in [
        ("criteo-small", ModelPreset::CriteoSmall, 1.0),
        ("criteo-dlrm", ModelPreset::CriteoDlrm, 0.1),
    ] {
        let config = preset.config(train.dense_width(), &table_rows);
        let subset = dlrm::first_rows(&train, (train.rows() as f64 * share) as usize);
        let settings = TrainConfig {
            epochs: 2,
            patience: None,
            ..preset.train_config()
        };
        let mut model = Dlrm::new(&config, 1)?;
        let report = dlrm::train(&mut model, &subset, None, &settings, &mut dlrm::Silent)?;
        let last = report.epochs.last().expect("two epochs");
        println!(
            "{name:>13}: {:>9.0} samples/s (batch {}, {} rows/epoch, {} embedding parameters)",
            last.samples_per_second,
            settings.batch_size,
            subset.rows(),
            config.embedding_parameters()
        );
    }
    Ok(())
}
