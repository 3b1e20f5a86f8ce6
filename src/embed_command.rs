//! `dlrm-he embed`: token embeddings of a text looked up under encryption with a real tokenizer
//! and embedding table, checked against the plaintext table.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use embed::OutputOrder;
use embed::llm::{BERT_TOKEN_TENSOR, EmbedOptions, LookupMode};

#[derive(Args)]
pub struct EmbedArgs {
    /// Model directory holding `tokenizer.json` and `model.safetensors` (for example
    /// all-MiniLM-L6-v2).
    #[arg(long)]
    pub model: PathBuf,
    /// The text to embed.
    pub text: String,
    /// Name of the token-embedding tensor (F32, [vocabulary, dimension]).
    #[arg(long, default_value = BERT_TOKEN_TENSOR)]
    pub tensor: String,
    /// Width of the signed integers the table is quantised to (symmetric, one scale).
    #[arg(long, default_value_t = 8)]
    pub bits: u32,
    /// Look the tokens up one query at a time (decode steps) instead of the whole prompt at once.
    #[arg(long)]
    pub token_by_token: bool,
    /// Order of the output ciphertexts.
    #[arg(long, value_enum, default_value_t = OrderArg::TokenMajor)]
    pub order: OrderArg,
    /// Leave out the tokenizer's special tokens ([CLS], [SEP]).
    #[arg(long)]
    pub no_special_tokens: bool,
    /// Seed of the client key (default: drawn from the operating system).
    #[arg(long)]
    pub key_seed: Option<u128>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OrderArg {
    /// Every component of token 1, then of token 2, ...
    TokenMajor,
    /// Component 0 of every token, then component 1, ...
    ComponentMajor,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let options = EmbedOptions {
        tensor: args.tensor,
        bits: args.bits,
        mode: if args.token_by_token {
            LookupMode::TokenByToken
        } else {
            LookupMode::Prompt
        },
        order: match args.order {
            OrderArg::TokenMajor => OutputOrder::SlotMajor,
            OrderArg::ComponentMajor => OutputOrder::ComponentMajor,
        },
        add_special_tokens: !args.no_special_tokens,
        key_seed: args.key_seed,
    };
    let report = embed::llm::run_embed_command(&args.model, &args.text, &options)
        .with_context(|| format!("embedding with the model in {}", args.model.display()))?;
    println!("{report}");
    anyhow::ensure!(
        report.is_exact(),
        "the encrypted lookup differs from the quantised table in {} outputs",
        report.integer_mismatches
    );
    Ok(())
}
