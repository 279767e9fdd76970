"""Checks what `terraform apply` of the example root left on an AWS API endpoint (moto, LocalStack).

Usage: python verify.py ENDPOINT BUCKET DIST

Reads the resources back through the AWS API, as a user would with the AWS CLI, and exits 1 naming
each one that is missing or set up differently from what the module promises. Prints a one-line
summary on success.
"""

import json
import os
import sys
import tomllib

import boto3

NAME = "tidelake"
PIPELINE = "ads"


def main(endpoint: str, bucket: str, dist: str) -> int:
    def client(service):
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        )

    problems = []

    def expect(what, actual, wanted):
        if actual != wanted:
            problems.append(f"{what}: {actual!r}, expected {wanted!r}")

    s3 = client("s3")
    expect("bucket versioning", s3.get_bucket_versioning(Bucket=bucket).get("Status"), "Enabled")
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        expect(f"bucket public access block {flag}", block.get(flag), True)
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    expect("bucket encryption", rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "aws:kms")
    lifecycle = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    archive = lifecycle.get("archive", {})
    expect("archive lifecycle storage class", [t.get("StorageClass") for t in archive.get("Transitions", [])], ["GLACIER_IR"])
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    expect("bucket policy statements", [s.get("Sid") for s in policy["Statement"]], ["DenyInsecureTransport"])

    lam = client("lambda")
    functions = {}
    for function, zip_name in ((f"{NAME}-ingest-{PIPELINE}", "ingest.zip"), (f"{NAME}-compact", "compact.zip")):
        config = lam.get_function(FunctionName=function)["Configuration"]
        functions[function] = config
        expect(f"{function} runtime", config["Runtime"], "provided.al2023")
        expect(f"{function} handler", config["Handler"], "bootstrap")
        expect(f"{function} code size", config["CodeSize"], os.path.getsize(os.path.join(dist, zip_name)))
        toml_text = config.get("Environment", {}).get("Variables", {}).get("TIDELAKE_CONFIG_TOML", "")
        try:
            root = tomllib.loads(toml_text)["lake"]["root"]
        except (tomllib.TOMLDecodeError, KeyError) as e:
            problems.append(f"{function}: TIDELAKE_CONFIG_TOML is no pipeline config ({e})")
            continue
        expect(f"{function} lake root", root, f"s3://{bucket}/lake")
    concurrency = lam.get_function_concurrency(FunctionName=f"{NAME}-compact").get("ReservedConcurrentExecutions")
    expect("compact reserved concurrency", concurrency, 1)
    expect("event source mappings (none without Kafka)", lam.list_event_source_mappings()["EventSourceMappings"], [])

    schedule = client("scheduler").get_schedule(Name=f"{NAME}-compact")
    expect("schedule target", schedule["Target"]["Arn"], functions[f"{NAME}-compact"]["FunctionArn"])
    if not schedule["ScheduleExpression"].startswith(("rate(", "cron(")):
        problems.append(f"schedule expression {schedule['ScheduleExpression']!r} is neither rate() nor cron()")

    queue = client("sqs").get_queue_url(QueueName=f"{NAME}-failed-batches")["QueueUrl"]

    role = functions[f"{NAME}-ingest-{PIPELINE}"]["Role"].rsplit("/", 1)[1]
    document = client("iam").get_role_policy(RoleName=role, PolicyName="lake")["PolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    resources = [r for s in document["Statement"] for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])]
    for resource in resources:
        if resource in ("*", f"arn:aws:s3:::{bucket}/*"):
            problems.append(f"ingest role policy grants {resource}")

    groups = client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{NAME}-")["logGroups"]
    expect("log groups", sorted(g["logGroupName"] for g in groups), [f"/aws/lambda/{NAME}-compact", f"/aws/lambda/{NAME}-ingest-{PIPELINE}"])
    if any("retentionInDays" not in g for g in groups):
        problems.append("a log group keeps its logs forever (no retention)")

    alarms = sorted(a["AlarmName"] for a in client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{NAME}-")["MetricAlarms"])
    for wanted in (f"{NAME}-ingest-{PIPELINE}-errors", f"{NAME}-compact-errors", f"{NAME}-dead-letters", f"{NAME}-falling-behind"):
        if wanted not in alarms:
            problems.append(f"alarm {wanted} missing (have {alarms})")

    if problems:
        for p in problems:
            print(f"verify.py: {p}", file=sys.stderr)
        return 1
    print(
        f"verify.py: bucket {bucket} private, versioned, KMS-encrypted; functions {sorted(functions)} "
        f"with their zips; schedule {schedule['ScheduleExpression']}; queue {queue}; {len(resources)} "
        f"prefix-scoped grants; {len(groups)} log groups; {len(alarms)} alarms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
