//! The Terraform example deploys a pipeline config tidelake accepts, and its function may write
//! exactly where that config's tables live.

use std::path::Path;

use tidelake_lake::PipelineConfig;

use crate::helpers::*;

#[test]
fn the_example_pipeline_is_valid_and_its_role_covers_every_table() {
    let example = repo().join("infra/terraform/example");
    let text = std::fs::read_to_string(example.join("tidelake.toml.tftpl"))
        .unwrap()
        .replace("${bucket}", "acme-lake")
        .replace("${brokers}", "b-1:9092,b-2:9092");
    let config = PipelineConfig::parse(&text, Path::new("/")).expect("the example's config is valid");
    let spec = &config.tables[0];
    assert_eq!(spec.location.as_str(), "s3://acme-lake/lake/ad_events");

    let main = std::fs::read_to_string(example.join("main.tf")).unwrap();
    let mut locations: Vec<&url::Url> = spec.delta_tables().into_iter().map(|(_, at)| at).collect();
    locations.extend(spec.rollup.iter().flat_map(|r| r.tables().map(|(_, _, at)| at)));
    assert_eq!(locations.len(), 6);
    for at in locations {
        let prefix = format!("\"{}/\"", at.path().trim_start_matches('/').trim_end_matches('/'));
        assert!(main.contains(&prefix), "the example's table_prefixes miss {prefix}, where a table lives");
    }
}
