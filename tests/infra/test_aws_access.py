"""infra/aws/access.py against a real AWS API (moto server): the security group lets SSH in
only from ray-cluster.yaml's CIDRs (a world-open rule Ray made is revoked), and the instance
profiles ray-cluster.yaml names reach S3 under one prefix, the head EC2 for its autoscaler."""

from __future__ import annotations

import json
from urllib.parse import unquote

import boto3
import pytest
import yaml
from infra_modules import ROOT, load

access = load("infra/aws/access.py")
pytestmark = pytest.mark.s3

CIDR = "198.51.100.7/32"


@pytest.fixture
def clients(s3_endpoint):
    def client(service: str):
        return boto3.client(service, endpoint_url=s3_endpoint.endpoint_url,
                            region_name="us-west-2",
                            aws_access_key_id=s3_endpoint.access_key_id,
                            aws_secret_access_key=s3_endpoint.secret_access_key)
    return client("ec2"), client("iam")


@pytest.fixture
def cluster() -> dict:
    cluster = yaml.safe_load((ROOT / "ray-cluster.yaml").read_text())
    (rule,) = cluster["provider"]["security_group"]["IpPermissions"]
    rule["IpRanges"] = [{"CidrIp": CIDR}]
    return cluster


def ingress(ec2, name: str) -> list[dict]:
    (group,) = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    return group["IpPermissions"]


def policy(iam, role: str) -> list[dict]:
    document = iam.get_role_policy(RoleName=role, PolicyName="mpmae")["PolicyDocument"]
    return (json.loads(unquote(document)) if isinstance(document, str) else document)[
        "Statement"]


def test_ssh_only_from_the_listed_cidr_and_a_world_open_rule_is_revoked(clients, cluster):
    ec2, iam = clients
    name = cluster["provider"]["security_group"]["GroupName"]
    vpc = access.default_vpc(ec2)
    # As Ray's launcher leaves it: the group exists with SSH open to everyone.
    group_id = ec2.create_security_group(GroupName=name, VpcId=vpc, Description="ray")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    access.grant(cluster, ec2, iam, "data-bucket", ["mpmae/"])
    access.grant(cluster, ec2, iam, "data-bucket", ["mpmae/"])  # twice: same end state
    rules = ingress(ec2, name)
    cidrs = [r["CidrIp"] for rule in rules for r in rule.get("IpRanges", [])]
    assert cidrs == [CIDR]
    (ssh,) = [rule for rule in rules if rule.get("FromPort") == 22]
    assert ssh["IpProtocol"] == "tcp" and ssh["ToPort"] == 22
    (internal,) = [rule for rule in rules if rule["IpProtocol"] == "-1"]
    assert [p["GroupId"] for p in internal["UserIdGroupPairs"]] == [group_id]


def test_instance_profiles_reach_one_prefix_and_the_head_only_its_cluster(clients, cluster):
    ec2, iam = clients
    access.grant(cluster, ec2, iam, "data-bucket", ["mmearth64", "runs/"])
    profiles = {t["node_config"]["IamInstanceProfile"]["Name"]
                for t in cluster["available_node_types"].values()}
    assert profiles == {"mpmae-head", "mpmae-worker"}
    for name in profiles:
        (role,) = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]
        assert role["RoleName"] == name
    worker = policy(iam, "mpmae-worker")
    assert {a for s in worker for a in s["Action"] if a.startswith("ec2:")} == set()
    objects = [s["Resource"] for s in worker if "s3:GetObject" in s["Action"]]
    assert objects == [["arn:aws:s3:::data-bucket/mmearth64/*", "arn:aws:s3:::data-bucket/runs/*"]]
    (listing,) = [s for s in worker if "s3:ListBucket" in s["Action"]]
    assert listing["Condition"]["StringLikeIfExists"]["s3:prefix"] == [
        "mmearth64", "mmearth64/*", "runs", "runs/*"]
    assert not [s for s in worker if s["Resource"] in ("*", "arn:aws:s3:::*")]
    head = policy(iam, "mpmae-head")
    (ending,) = [s for s in head if "ec2:TerminateInstances" in s["Action"]]
    assert ending["Condition"] == {
        "StringEquals": {"ec2:ResourceTag/ray-cluster-name": cluster["cluster_name"]}}
    (passing,) = [s for s in head if s["Action"] == "iam:PassRole"]
    assert passing["Resource"] == iam.get_role(RoleName="mpmae-worker")["Role"]["Arn"]
    assert not [s for s in head if s["Action"] in ("*", "ec2:*", "s3:*", "iam:*")]


def test_grant_refuses_the_placeholder_before_touching_aws(clients):
    ec2, iam = clients
    shipped = yaml.safe_load((ROOT / "ray-cluster.yaml").read_text())
    shipped["provider"]["security_group"]["GroupName"] = "mpmae-never-made"
    with pytest.raises(access.AccessError, match="SET-YOUR-SSH-CIDR"):
        access.grant(shipped, ec2, iam, "data-bucket", ["mpmae"])
    assert not ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["mpmae-never-made"]}])["SecurityGroups"]


def test_node_types_must_use_the_profiles_it_makes(clients, cluster):
    ec2, iam = clients
    cluster["available_node_types"]["gpu_8x"]["node_config"]["IamInstanceProfile"] = {
        "Name": "ray-autoscaler-v1"}
    with pytest.raises(access.AccessError, match="gpu_8x's IamInstanceProfile should be"):
        access.grant(cluster, ec2, iam, "data-bucket", ["mpmae"])


@pytest.mark.parametrize("prefixes", [[], ["/"], ["runs", ""]])
def test_the_whole_bucket_is_refused(prefixes):
    with pytest.raises(access.AccessError, match="--prefix"):
        access.s3_statements("data-bucket", prefixes)
