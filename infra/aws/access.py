"""Least access for the AWS cluster of ray-cluster.yaml: make it once before `ray up`.

    python infra/aws/access.py --bucket BUCKET --prefix mmearth64 --prefix mpmae-runs

It makes, or brings back to what is below, with your AWS credentials:
  security group   provider.security_group.GroupName: all traffic between the cluster's
                   nodes, SSH only from the CIDRs ray-cluster.yaml lists, nothing else
  mpmae-worker     instance profile of the GPU workers: S3 under s3://BUCKET/PREFIX/ only
                   (each --prefix: the data's and the runs' folders)
  mpmae-head       instance profile of the head: the same S3 access, plus what the
                   autoscaler needs (start, stop and tag instances, end only those of
                   this cluster, hand them the worker role)

Ray's launcher would make that security group itself with SSH open to the world: Ray 2.60
adds a 0.0.0.0/0 rule for port 22 to whatever IpPermissions the file lists, but leaves a
group that already has rules as it is. The role ray up would make (ray-autoscaler-v1) has
full EC2 and full S3 access.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "ray-cluster.yaml"
CIDR_PLACEHOLDER = "SET-YOUR-SSH-CIDR"
HEAD, WORKER = "mpmae-head", "mpmae-worker"
# The tag Ray's AWS node provider puts on every instance of a cluster.
CLUSTER_TAG = "ray-cluster-name"
EC2_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
    "Action": "sts:AssumeRole"}]}


class AccessError(ValueError):
    """ray-cluster.yaml or the arguments do not say a safe access; the message says what to fix."""


def ssh_cidrs(cluster: dict) -> list[str]:
    """The CIDRs ray-cluster.yaml lets SSH in from; refuses the placeholder and the world."""
    rules = cluster["provider"].get("security_group", {}).get("IpPermissions", [])
    cidrs = [r["CidrIp"] for rule in rules if rule.get("FromPort") == 22
             for r in rule.get("IpRanges", [])]
    where = f"{CLUSTER_YAML.name}: provider.security_group.IpPermissions"
    if not cidrs:
        raise AccessError(f"{where} has no SSH (port 22) rule: add one with your network's "
                          "CIDR, e.g. 198.51.100.7/32")
    for cidr in cidrs:
        if cidr == CIDR_PLACEHOLDER:
            raise AccessError(f"{where} still holds {CIDR_PLACEHOLDER}: replace it with the "
                              "CIDR you run `ray up` from (your public IP as x.x.x.x/32)")
        try:
            network = ipaddress.ip_network(cidr)
        except ValueError:
            raise AccessError(f"{where}: {cidr!r} is not a CIDR such as 198.51.100.7/32") from None
        if network.prefixlen == 0:
            raise AccessError(f"{where}: {cidr} opens SSH to the whole internet; name your "
                              "own network instead")
    return cidrs


def s3_statements(bucket: str, prefixes: list[str]) -> list[dict[str, Any]]:
    """Read, write and list under each s3://bucket/prefix/, nothing else of S3."""
    prefixes = [p.strip("/") for p in prefixes]
    if not prefixes or "" in prefixes:
        raise AccessError("name the bucket's folders the nodes may use with --prefix (not "
                          "the whole bucket), e.g. --prefix mmearth64 --prefix mpmae-runs")
    return [
        # Listing needs the bucket; the condition keeps it to the prefixes. IfExists: a
        # request without one (HeadBucket, which pyarrow sends to check the bucket) passes.
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLikeIfExists": {
             "s3:prefix": [form for p in prefixes for form in (p, f"{p}/*")]}}},
        {"Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                    "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
         "Resource": [f"arn:aws:s3:::{bucket}/{p}/*" for p in prefixes]},
    ]


def autoscaler_statements(cluster_name: str, worker_role_arn: str) -> list[dict[str, Any]]:
    """What the head's autoscaler does to EC2: launch and tag workers, stop, start and end
    only this cluster's instances, give them the worker role."""
    return [
        {"Effect": "Allow",
         "Action": ["ec2:RunInstances", "ec2:CreateTags", "ec2:Describe*"],
         "Resource": "*"},
        {"Effect": "Allow",
         "Action": ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"],
         "Resource": "*",
         "Condition": {"StringEquals": {f"ec2:ResourceTag/{CLUSTER_TAG}": cluster_name}}},
        # ImageId: resolve:ssm:… makes EC2 read the public AMI parameter as the caller.
        {"Effect": "Allow", "Action": "ssm:GetParameters",
         "Resource": "arn:aws:ssm:*::parameter/aws/service/*"},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": worker_role_arn},
    ]


def ensure_role(iam, name: str, statements: list[dict[str, Any]]) -> str:
    """Role ``name`` for EC2 with exactly ``statements`` inline, in an instance profile of
    the same name; returns the role's ARN."""
    try:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST),
                              Description="mpmae cluster node (infra/aws/access.py)")["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="mpmae",
                        PolicyDocument=json.dumps({"Version": "2012-10-17",
                                                   "Statement": statements}))
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except iam.exceptions.NoSuchEntityException:
        profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    if name not in [role["RoleName"] for role in profile["Roles"]]:
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return arn


def ensure_security_group(ec2, name: str, vpc_id: str, cidrs: list[str]) -> str:
    """Group ``name`` in ``vpc_id`` with exactly: all traffic from itself, SSH from
    ``cidrs``. Any other ingress rule (a world-open SSH rule Ray made) is revoked."""
    found = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": [name]}])
    if found["SecurityGroups"]:
        group = found["SecurityGroups"][0]
    else:
        group_id = ec2.create_security_group(
            GroupName=name, VpcId=vpc_id,
            Description="mpmae Ray cluster: intra-cluster traffic, SSH from listed CIDRs",
        )["GroupId"]
        group = {"GroupId": group_id, "IpPermissions": []}
    group_id = group["GroupId"]
    wanted = [
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges": [{"CidrIp": cidr} for cidr in cidrs]},
    ]
    if group["IpPermissions"]:
        ec2.revoke_security_group_ingress(GroupId=group_id,
                                          IpPermissions=group["IpPermissions"])
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=wanted)
    return group_id


def default_vpc(ec2) -> str:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise AccessError("this region has no default VPC: pass --vpc-id, and set SubnetIds "
                          "of that VPC in every node_config of ray-cluster.yaml")
    return vpcs[0]["VpcId"]


def grant(cluster: dict, ec2, iam, bucket: str, prefixes: list[str],
          vpc_id: str | None = None) -> None:
    """Make the security group and both instance profiles that ``cluster`` names."""
    cidrs = ssh_cidrs(cluster)
    s3 = s3_statements(bucket, prefixes)
    for node_type, expected in ((cluster["head_node_type"], HEAD), *(
            (name, WORKER) for name in cluster["available_node_types"]
            if name != cluster["head_node_type"])):
        named = cluster["available_node_types"][node_type]["node_config"].get(
            "IamInstanceProfile", {}).get("Name")
        if named != expected:
            raise AccessError(f"{CLUSTER_YAML.name}: {node_type}'s IamInstanceProfile should "
                              f"be {{Name: {expected}}}, not {named!r}")
    worker_arn = ensure_role(iam, WORKER, s3)
    ensure_role(iam, HEAD, s3 + autoscaler_statements(cluster["cluster_name"], worker_arn))
    group = cluster["provider"]["security_group"]["GroupName"]
    group_id = ensure_security_group(ec2, group, vpc_id or default_vpc(ec2), cidrs)
    print(f"security group {group} ({group_id}): SSH from {', '.join(cidrs)} only")
    folders = ", ".join(f"s3://{bucket}/{p.strip('/')}/" for p in prefixes)
    print(f"instance profiles {HEAD}, {WORKER}: S3 under {folders} only")


def main(argv: list[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True, help="the S3 bucket of data and runs")
    parser.add_argument("--prefix", action="append", required=True,
                        help="a folder of the bucket the nodes may use (repeatable: the "
                             "data's and the runs' folders)")
    parser.add_argument("--vpc-id", default=None, help="default: the region's default VPC")
    parser.add_argument("--cluster-config", type=Path, default=CLUSTER_YAML)
    args = parser.parse_args(argv)
    cluster = yaml.safe_load(args.cluster_config.read_text())
    region = cluster["provider"]["region"]
    try:
        grant(cluster, boto3.client("ec2", region_name=region),
              boto3.client("iam", region_name=region), args.bucket, args.prefix, args.vpc_id)
    except AccessError as e:
        print(f"access.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
