//! A function's credentials come from the variables Lambda sets, else a container endpoint:
//! never from the profile files or the web identity token the SDK's default chain would try.
//! One test in its own binary, because it changes the process environment.

use aws_config::SdkConfig;
use aws_credential_types::provider::{self, ProvideCredentials};
use orders::aws::{function_credentials, load, load_with_default_credentials, SdkBudget};

const KEYS: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// What a configuration's credentials provider answers.
async fn credentials_of(config: &SdkConfig) -> provider::Result {
    config
        .credentials_provider()
        .expect("a provider")
        .provide_credentials()
        .await
}

#[tokio::test]
async fn functions_take_the_environment_and_never_profiles_or_web_identity() {
    // A profile and a web identity set-up the default chain would use.
    let home = std::env::temp_dir().join(format!("function-credentials-{}", std::process::id()));
    std::fs::create_dir_all(home.join(".aws")).expect("temp dir");
    std::fs::write(
        home.join(".aws/credentials"),
        "[default]\naws_access_key_id = FROMPROFILE\naws_secret_access_key = secret\n",
    )
    .expect("credentials file");
    std::env::set_var("HOME", &home);
    std::env::set_var("AWS_REGION", "eu-west-1");
    std::env::set_var("AWS_WEB_IDENTITY_TOKEN_FILE", home.join("token"));
    std::env::set_var(
        "AWS_ROLE_ARN",
        "arn:aws:iam::123456789012:role/never-assumed",
    );
    for key in KEYS {
        std::env::remove_var(key);
    }
    std::env::remove_var("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    std::env::remove_var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");

    // Nothing in the environment: no credentials, rather than the profile's.
    let container = aws_config::provider_config::ProviderConfig::without_region();
    let refused = function_credentials(&container).provide_credentials().await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(credentials_of(&load(SdkBudget::QUERY).await).await.is_err());
    // An operator's tool does read the profile.
    let operator = load_with_default_credentials(SdkBudget::OPERATOR).await;
    let from_profile = credentials_of(&operator).await.expect("the profile's keys");
    assert_eq!(from_profile.access_key_id(), "FROMPROFILE");

    // What Lambda sets is what a function uses.
    std::env::set_var("AWS_ACCESS_KEY_ID", "FROMLAMBDA");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "secret");
    std::env::set_var("AWS_SESSION_TOKEN", "session");
    let credentials = credentials_of(&load(SdkBudget::QUERY).await)
        .await
        .expect("the environment's keys");
    assert_eq!(credentials.access_key_id(), "FROMLAMBDA");
    assert_eq!(credentials.session_token(), Some("session"));
    let _ = std::fs::remove_dir_all(&home);
}
