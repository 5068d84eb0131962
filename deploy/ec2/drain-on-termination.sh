#!/usr/bin/env bash
# Scale-in without losing work on EC2: watch the instance metadata and, when the Auto
# Scaling group starts terminating this instance (lifecycle hook, state "Terminated")
# or a spot interruption is announced, stop the picloud workers and let the group go on.
#
# Stopping a worker (SIGTERM) drains it: it starts no new job, gives the jobs it claimed
# but had not started back to the queue at once, lets running jobs finish for
# PICLOUD_DRAIN_GRACE seconds (default 30) and requeues the ones still running then.
# Give the lifecycle hook a heartbeat timeout longer than that grace.
#
# Run it as picloud-drain-watch.service (next to this file). Needs the AWS CLI and an
# instance role allowed autoscaling:DescribeAutoScalingInstances and
# autoscaling:CompleteLifecycleAction.
set -euo pipefail

HOOK_NAME=${PICLOUD_LIFECYCLE_HOOK:-picloud-drain}
IMDS=http://169.254.169.254/latest

token() {
  curl -fsS -X PUT "$IMDS/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300"
}

metadata() {  # prints the item, or nothing if it does not exist (yet)
  curl -fsS -H "X-aws-ec2-metadata-token: $(token)" "$IMDS/meta-data/$1" 2>/dev/null || true
}

drain() {
  echo "draining picloud workers: $1"
  systemctl stop 'picloud-worker@*.service'  # returns once every worker has exited
}

while true; do
  if [ "$(metadata autoscaling/target-lifecycle-state)" = "Terminated" ]; then
    drain "the Auto Scaling group is terminating this instance"
    instance=$(metadata instance-id)
    group=$(aws autoscaling describe-auto-scaling-instances --instance-ids "$instance" \
      --query 'AutoScalingInstances[0].AutoScalingGroupName' --output text)
    aws autoscaling complete-lifecycle-action --lifecycle-hook-name "$HOOK_NAME" \
      --auto-scaling-group-name "$group" --instance-id "$instance" \
      --lifecycle-action-result CONTINUE
    exit 0
  fi
  if [ -n "$(metadata spot/instance-action)" ]; then
    drain "a spot interruption was announced (two minutes' notice)"
    exit 0
  fi
  sleep 5
done
