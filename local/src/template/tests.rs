//! Unit tests of the template model and the intrinsics evaluator.

use super::*;

const SAMPLE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Metadata:
  ManagedInstances:
    Functions: {Api: 8}
Parameters:
  Stage: {Type: String, Default: dev}
  AlarmEmail: {Type: String, Default: ""}
Mappings:
  StageConfig:
    dev: {LogLevel: debug}
  Database:
    Settings: {Name: orders, Port: 5432}
Conditions:
  HasAlarmEmail: !Not [!Equals [!Ref AlarmEmail, ""]]
Globals:
  Function:
    Timeout: 10
    MemorySize: 256
    LoggingConfig: {LogFormat: JSON}
    Environment:
      Variables:
        LOG_LEVEL: !FindInMap [StageConfig, !Ref Stage, LogLevel]
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  AlarmTopic:
    Type: AWS::SNS::Topic
    Condition: HasAlarmEmail
  Queue:
    Type: AWS::SQS::Queue
  Api:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: api}}
    Properties:
      Timeout: 6
      Environment:
        Variables:
          TABLE: !Ref Table
          TABLE_ARN: !GetAtt Table.Arn
          PORT: !FindInMap [Database, Settings, Port]
          URL: !Sub "https://${Table}.example/${AWS::Region}/${!Literal}"
      Events:
        Get: {Type: HttpApi, Properties: {Method: get, Path: "/things/{id}"}}
        Tick: {Type: Schedule, Properties: {Schedule: rate(5 minutes), Input: '{"a":1}'}}
        Off: {Type: ScheduleV2, Properties: {ScheduleExpression: rate(1 minute), State: DISABLED}}
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      ReservedConcurrentExecutions: 7
      Events:
        Q: {Type: SQS, Properties: {Queue: !GetAtt Queue.Arn, BatchSize: 5}}
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref Api
      EventSourceArn: !GetAtt Queue.Arn
      MaximumBatchingWindowInSeconds: 2
      FunctionResponseTypes: [ReportBatchItemFailures]
      ScalingConfig: {MaximumConcurrency: 3}
"#;

#[test]
fn short_form_tags_become_long_form() {
    let t = Template::parse(SAMPLE).unwrap();
    let vars = &t.root["Resources"]["Api"]["Properties"]["Environment"]["Variables"];
    assert_eq!(vars["TABLE"], json!({"Ref": "Table"}));
    assert_eq!(vars["TABLE_ARN"], json!({"Fn::GetAtt": ["Table", "Arn"]}));
    assert_eq!(
        vars["PORT"],
        json!({"Fn::FindInMap": ["Database", "Settings", "Port"]})
    );
    assert_eq!(
        t.root["Conditions"]["HasAlarmEmail"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]})
    );
}

#[test]
fn managed_instances_concurrency_comes_from_the_template_metadata() {
    let t = Template::parse(SAMPLE).unwrap();
    let functions = t.functions().unwrap();
    let of = |id: &str| {
        functions
            .iter()
            .find(|f| f.logical_id == id)
            .unwrap()
            .managed_concurrency
    };
    assert_eq!((of("Api"), of("Worker")), (Some(8), None));
}

#[test]
fn functions_merge_globals_and_collect_events() {
    let t = Template::parse(SAMPLE).unwrap();
    let functions = t.functions().unwrap();
    let api = &functions[0];
    assert_eq!(api.binary, "api");
    assert_eq!(api.timeout, Duration::from_secs(6));
    assert_eq!(api.memory_mb, 256);
    assert_eq!(api.log_format.as_deref(), Some("JSON"));
    assert!(api.env.contains_key("LOG_LEVEL") && api.env.contains_key("TABLE"));
    assert_eq!(
        api.routes,
        vec![RouteDef {
            event: "Get".into(),
            method: "GET".into(),
            path: Some("/things/{id}".into()),
            payload_format: "2.0".into(),
            auth: RouteAuth::Open,
        }]
    );
    assert_eq!(api.schedules.len(), 1, "the disabled schedule is left out");
    assert_eq!(api.schedules[0].expression, "rate(5 minutes)");
    assert_eq!(api.schedules[0].input.as_deref(), Some(r#"{"a":1}"#));
    assert_eq!(
        api.sqs,
        vec![SqsMappingDef {
            name: "Mapping".into(),
            queue: "Queue".into(),
            batch_size: 10,
            batching_window: Duration::from_secs(2),
            report_batch_item_failures: true,
            max_concurrency: Some(3),
        }]
    );
    let worker = &functions[1];
    assert_eq!(worker.binary, "worker");
    assert_eq!(worker.timeout, Duration::from_secs(10));
    assert_eq!(worker.sqs[0].batch_size, 5);
    assert_eq!(worker.sqs[0].max_concurrency, None);
    assert_eq!(worker.reserved_concurrency, Some(7));
    assert_eq!(api.reserved_concurrency, None);
    assert!(!worker.sqs[0].report_batch_item_failures);
}

#[test]
fn resolver_evaluates_intrinsics() {
    let t = Template::parse(SAMPLE).unwrap();
    let mut r = Resolver::new(&t, "eu-west-1", "123456789012", "stack");
    r.physical.insert(
        "Table".into(),
        Physical::new("stack-table").with(
            "Arn",
            "arn:aws:dynamodb:eu-west-1:123456789012:table/stack-table",
        ),
    );
    let env = &t.functions().unwrap()[0].env;
    assert_eq!(r.string(&env["LOG_LEVEL"]).unwrap(), "debug");
    assert_eq!(r.string(&env["TABLE"]).unwrap(), "stack-table");
    assert!(r
        .string(&env["TABLE_ARN"])
        .unwrap()
        .ends_with(":table/stack-table"));
    assert_eq!(r.string(&env["PORT"]).unwrap(), "5432");
    assert_eq!(
        r.string(&env["URL"]).unwrap(),
        "https://stack-table.example/eu-west-1/${Literal}"
    );
    assert!(!r.condition("HasAlarmEmail").unwrap());
    assert!(!r.is_created(t.resource("AlarmTopic").unwrap()).unwrap());
    assert!(r.string(&json!({"Ref": "Missing"})).is_err());
    assert_eq!(r.resolve(&json!({"Ref": "AWS::NoValue"})).unwrap(), None);
    assert_eq!(
        r.value(&json!({"a": {"Ref": "AWS::NoValue"}, "b": [1, {"Ref": "AWS::NoValue"}]}))
            .unwrap(),
        json!({"b": [1]})
    );
}

const WITH_AUTH: &str = r#"
Conditions:
  CreateUserPool: !Equals [!Ref JwtIssuer, ""]
Resources:
  UserPool: {Type: AWS::Cognito::UserPool}
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: OrdersJwt
        Authorizers:
          OrdersJwt:
            IdentitySource: $request.header.Authorization
            JwtConfiguration:
              issuer: !If [CreateUserPool, !Sub "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}", !Ref JwtIssuer]
              audience:
                - !If [CreateUserPool, !Ref UserPoolClient, !Ref JwtAudience]
          Scoped:
            AuthorizationScopes: [orders/read]
            JwtConfiguration: {issuer: x, audience: [y]}
          Custom:
            FunctionArn: arn:aws:lambda:eu-west-1:1:function:f
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Post: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: POST, Path: /orders}}
        Admin:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Method: POST
            Path: /admin
            Auth: {AuthorizationScopes: [orders/admin]}
        Health: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: /ping, Auth: {Authorizer: NONE}}}
        Read: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: /r, Auth: {Authorizer: Scoped}}}
        Lambda: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: /l, Auth: {Authorizer: Custom}}}
        Implicit: {Type: HttpApi, Properties: {Method: GET, Path: /implicit}}
"#;

#[test]
fn route_authorizers_come_from_the_template() {
    let t = Template::parse(WITH_AUTH).unwrap();
    let functions = t.functions().unwrap();
    let auth: BTreeMap<&str, &RouteAuth> = functions[0]
        .routes
        .iter()
        .map(|r| (r.event.as_str(), &r.auth))
        .collect();
    let jwt = |name: &str, scopes: &[&str]| RouteAuth::Jwt {
        authorizer: name.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    };
    assert_eq!(auth["Post"], &jwt("OrdersJwt", &[]));
    assert_eq!(auth["Admin"], &jwt("OrdersJwt", &["orders/admin"]));
    assert_eq!(auth["Health"], &RouteAuth::Open);
    assert_eq!(auth["Read"], &jwt("Scoped", &["orders/read"]));
    assert_eq!(
        auth["Lambda"],
        &RouteAuth::Unsupported {
            authorizer: "Custom".into(),
            kind: "Lambda".into()
        }
    );
    // The implicit API has no Auth here (none in Globals.HttpApi either).
    assert_eq!(auth["Implicit"], &RouteAuth::Open);

    let with_globals = WITH_AUTH.replacen(
            "Resources:",
            "Globals:\n  HttpApi:\n    Auth:\n      DefaultAuthorizer: G\n      Authorizers:\n        G: {JwtConfiguration: {issuer: i, audience: [a]}}\nResources:",
            1,
        );
    let functions = Template::parse(&with_globals).unwrap().functions().unwrap();
    let implicit = functions[0].routes.iter().find(|r| r.event == "Implicit");
    assert_eq!(implicit.unwrap().auth, jwt("G", &[]));

    let unknown = WITH_AUTH.replace("Authorizer: Custom", "Authorizer: Missing");
    let error = Template::parse(&unknown).unwrap().functions().unwrap_err();
    assert!(error.contains("Missing"), "{error}");
}

#[test]
fn kebab_case_names() {
    assert_eq!(
        kebab("OrderEventsDeadLetterQueue"),
        "order-events-dead-letter-queue"
    );
    assert_eq!(kebab("OrdersTable"), "orders-table");
    assert_eq!(kebab("DBProxy"), "db-proxy");
    assert_eq!(kebab("S3Bucket2"), "s3-bucket2");
}

#[test]
fn the_project_template_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let t = Template::load(&path).unwrap();
    let functions = t.functions().unwrap();
    let triggered: Vec<_> = functions.iter().filter(|f| f.has_triggers()).collect();
    assert!(
        triggered.iter().any(|f| !f.routes.is_empty()),
        "an HTTP route"
    );
    assert!(
        triggered.iter().any(|f| !f.sqs.is_empty()),
        "an SQS event source"
    );
    assert!(
        triggered
            .iter()
            .flat_map(|f| &f.routes)
            .any(|r| matches!(r.auth, RouteAuth::Jwt { .. })),
        "a route behind the JWT authorizer"
    );
}
