#!/usr/bin/env bash
# aws-cli and rclone against memo's S3 gateway. Run by the Rust test `s3_cli_tools`
# (memo-sdk/tests/s3.rs), which starts the gateway and passes AWS_ENDPOINT_URL,
# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Exits non-zero on the first failed check.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export AWS_DEFAULT_REGION=us-east-1 AWS_MAX_ATTEMPTS=1
ok() { echo "ok: $*"; }
awsc() { aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }

# A file above aws-cli's 8 MiB multipart threshold: it goes up in two parts.
python3 -c "import os,sys; sys.stdout.buffer.write(os.urandom(9*1024*1024+12345))" >"$work/big"

awsc s3 mb s3://cli >/dev/null
awsc s3 cp "$work/big" s3://cli/dir/big.bin >/dev/null
awsc s3 ls s3://cli/dir/ | grep -q ' big.bin$'
ok "aws s3 cp (multipart) and ls"
etag=$(awsc s3api head-object --bucket cli --key dir/big.bin --query ETag --output text)
[[ "$etag" == *-2\" ]] || { echo "expected a 2-part ETag, got $etag"; exit 1; }
ok "multipart ETag $etag"
awsc s3 cp s3://cli/dir/big.bin "$work/big.back" >/dev/null
cmp "$work/big" "$work/big.back"
ok "aws s3 cp back"
awsc s3api get-object --bucket cli --key dir/big.bin --range bytes=8388000-8389999 "$work/range" >/dev/null
cmp "$work/range" <(tail -c +8388001 "$work/big" | head -c 2000)
ok "aws s3api get-object --range across the part boundary"
awsc s3 rm s3://cli/dir/big.bin >/dev/null
[ -z "$(awsc s3 ls s3://cli/dir/ || true)" ]
ok "aws s3 rm"

export RCLONE_CONFIG_MEMO_TYPE=s3 RCLONE_CONFIG_MEMO_PROVIDER=Other \
  RCLONE_CONFIG_MEMO_ENV_AUTH=false RCLONE_CONFIG_MEMO_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
  RCLONE_CONFIG_MEMO_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
  RCLONE_CONFIG_MEMO_ENDPOINT="$AWS_ENDPOINT_URL" RCLONE_CONFIG_MEMO_REGION=us-east-1 \
  RCLONE_CONFIG_MEMO_FORCE_PATH_STYLE=true RCLONE_CONFIG=/dev/null
# (An AWS_CA_BUNDLE in the environment makes rclone refuse its plain-HTTP client.)
rc() { env -u AWS_CA_BUNDLE rclone --retries 1 --low-level-retries 1 "$@"; }
rc copy "$work/big" memo:cli/r/
rc ls memo:cli/r | grep -q ' big$'
ok "rclone copy and ls"
rc cat --offset 1000 --count 5000 memo:cli/r/big >"$work/rpart"
cmp "$work/rpart" <(tail -c +1001 "$work/big" | head -c 5000)
ok "rclone ranged read"
mkdir -p "$work/tree/a/b" "$work/tree/c"
for f in a/one a/b/two c/three top; do
  python3 -c "import os,sys; sys.stdout.buffer.write(os.urandom(1000 + len(sys.argv[1]) * 777))" "$f" >"$work/tree/$f"
done
cp "$work/tree/a/one" "$work/tree/c/same-as-one"
rc sync "$work/tree" memo:cli/tree
rc check "$work/tree" memo:cli/tree
ok "rclone sync and check"
rm "$work/tree/a/b/two"
echo changed >"$work/tree/top"
rc sync "$work/tree" memo:cli/tree
rc check "$work/tree" memo:cli/tree
[ "$(rc lsf -R --files-only memo:cli/tree | sort | tr '\n' ' ')" = "a/one c/same-as-one c/three top " ] || {
  rc lsf -R memo:cli/tree
  exit 1
}
ok "rclone sync of a changed tree"
rc purge memo:cli/tree
rc delete memo:cli/r
awsc s3 rb s3://cli >/dev/null
ok "rclone purge, aws s3 rb"
echo "cli: all checks passed"
