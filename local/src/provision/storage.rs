//! DynamoDB tables (with their indexes) and S3 buckets.

use super::{err, name_of, wanted, Provisioned};
use crate::template::{Physical, Resolver};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ProvisionedThroughput, ScalarAttributeType,
};
use serde_json::Value;

/// Creates every table (an existing one is kept).
pub(super) async fn create_tables(
    aws: &SdkConfig,
    resolver: &mut Resolver<'_>,
    done: &mut Provisioned,
) -> Result<(), String> {
    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    for (id, props) in wanted(resolver, "AWS::DynamoDB::Table")? {
        let name = name_of(resolver, &id, &props, "TableName")?;
        let (request, indexes) = table_request(dynamo.create_table(), resolver, &props)?;
        match request.table_name(&name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(err("CreateTable")(e)),
        }
        let indexes = if indexes.is_empty() {
            String::new()
        } else {
            format!(", index {}", indexes.join(", "))
        };
        done.lines.push(format!("DynamoDB table {name}{indexes}"));
        let arn = format!(
            "arn:aws:dynamodb:{}:{}:table/{name}",
            resolver.region, resolver.account_id
        );
        resolver
            .physical
            .insert(id, Physical::new(name).with("Arn", arn));
    }
    Ok(())
}

fn key_schema(v: &Value) -> Result<Vec<KeySchemaElement>, String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(k["AttributeName"].as_str().unwrap_or_default())
                .key_type(KeyType::from(k["KeyType"].as_str().unwrap_or_default()))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn projection(v: &Value) -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::from(
            v["ProjectionType"].as_str().unwrap_or("ALL"),
        ))
        .set_non_key_attributes(v["NonKeyAttributes"].as_array().map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        }))
        .build()
}

fn throughput() -> ProvisionedThroughput {
    ProvisionedThroughput::builder()
        .read_capacity_units(5)
        .write_capacity_units(5)
        .build()
        .expect("throughput")
}

/// The `CreateTable` request for the table's properties, and the names of its indexes.
fn table_request(
    mut request: CreateTableFluentBuilder,
    resolver: &Resolver<'_>,
    props: &Value,
) -> Result<(CreateTableFluentBuilder, Vec<String>), String> {
    let provisioned = resolver
        .resolve(&props["BillingMode"])?
        .and_then(|v| v.as_str().map(str::to_string))
        .is_some_and(|m| m == "PROVISIONED");
    request = request.billing_mode(if provisioned {
        BillingMode::Provisioned
    } else {
        BillingMode::PayPerRequest
    });
    if provisioned {
        request = request.provisioned_throughput(throughput());
    }
    for attribute in resolver
        .value(&props["AttributeDefinitions"])?
        .as_array()
        .into_iter()
        .flatten()
    {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute["AttributeName"].as_str().unwrap_or_default())
                .attribute_type(ScalarAttributeType::from(
                    attribute["AttributeType"].as_str().unwrap_or("S"),
                ))
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    request = request.set_key_schema(Some(key_schema(&resolver.value(&props["KeySchema"])?)?));
    let mut indexes = Vec::new();
    for index in resolver
        .value(&props["GlobalSecondaryIndexes"])?
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = index["IndexName"].as_str().unwrap_or_default();
        indexes.push(name.to_string());
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(name)
            .set_key_schema(Some(key_schema(&index["KeySchema"])?))
            .projection(projection(&index["Projection"]));
        if provisioned {
            gsi = gsi.provisioned_throughput(throughput());
        }
        request = request.global_secondary_indexes(gsi.build().map_err(|e| e.to_string())?);
    }
    for index in resolver
        .value(&props["LocalSecondaryIndexes"])?
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = index["IndexName"].as_str().unwrap_or_default();
        indexes.push(name.to_string());
        request = request.local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(name)
                .set_key_schema(Some(key_schema(&index["KeySchema"])?))
                .projection(projection(&index["Projection"]))
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    Ok((request, indexes))
}

/// Creates every bucket (path-style addressing, as moto needs; an existing one is kept).
pub(super) async fn create_buckets(
    aws: &SdkConfig,
    resolver: &mut Resolver<'_>,
    done: &mut Provisioned,
) -> Result<(), String> {
    let region = resolver.region.clone();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(aws)
            .force_path_style(true)
            .build(),
    );
    for (id, props) in wanted(resolver, "AWS::S3::Bucket")? {
        let name = name_of(resolver, &id, &props, "BucketName")?.to_ascii_lowercase();
        match s3.create_bucket().bucket(&name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                }) => {}
            Err(e) => return Err(err("CreateBucket")(e)),
        }
        done.lines.push(format!("S3 bucket {name}"));
        let physical = Physical::new(name.clone())
            .with("Arn", format!("arn:aws:s3:::{name}"))
            .with("DomainName", format!("{name}.s3.amazonaws.com"))
            .with(
                "RegionalDomainName",
                format!("{name}.s3.{region}.amazonaws.com"),
            );
        resolver.physical.insert(id, physical);
    }
    Ok(())
}
