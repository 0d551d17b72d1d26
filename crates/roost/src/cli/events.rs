//! `roost events`: follow the change stream.

use futures_util::StreamExt;
use roost_api::events::EventFilter;

use super::{GlobalArgs, OutputFormat};

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only these resource or event types, comma-separated (token,operation.updated)
    #[arg(long = "type", value_name = "TYPES")]
    pub kind: Option<String>,
    /// Only events about this resource id
    #[arg(long)]
    pub resource_id: Option<String>,
    /// Stop after this many events
    #[arg(long)]
    pub count: Option<usize>,
}

pub async fn run(global: &GlobalArgs, args: EventsArgs) -> anyhow::Result<()> {
    let client = global.client()?;
    let filter = EventFilter { kind: args.kind, resource_id: args.resource_id };
    let mut stream = Box::pin(client.events(&filter, None).await?);
    let mut seen = 0;
    while let Some(event) = stream.next().await {
        let event = event?;
        match global.output {
            // One JSON document per line, for `jq` and friends.
            OutputFormat::Json => println!("{}", serde_json::to_string(&event)?),
            OutputFormat::Yaml => print!("---\n{}", yaml_serde::to_string(&event)?),
            OutputFormat::Table => println!(
                "{}  {:<20} {:<10} {}",
                event.time.format("%H:%M:%S"),
                event.kind,
                event.resource_type,
                event.resource_id
            ),
        }
        seen += 1;
        if args.count.is_some_and(|c| seen >= c) {
            break;
        }
    }
    Ok(())
}
