#!/usr/bin/env bash
# mkcerts.sh DIR - the certificates the TLS tests use, made with the openssl
# command (EC P-256 keys: quick to make and to use).
#
#   ca.pem ca.key               the test CA
#   server.pem server.key       CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   client.pem client.key       CN=kamailio-a (client authentication)
#   client-b.pem client-b.key   CN=kamailio-b
#   expired.pem expired.key     CN=localhost with the same SANs, valid from
#                               2020-01-01 to 2020-01-02 (server and client use)
#   other.pem other.key         CN=other.example, SAN DNS:other.example only
#   rogue-ca.pem rogue-ca.key   another CA, which nobody trusts
#   rogue.pem rogue.key         CN=kamailio-a and the server SANs, signed by rogue-ca
#
# Idempotent: a DIR that already has every file is left as it is.
set -euo pipefail
dir=${1:?usage: mkcerts.sh DIR}
mkdir -p "$dir"
cd "$dir"
[ -f rogue.pem ] && [ -f expired.pem ] && exit 0

days=36500
san_server="subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

# ca NAME CN
ca() {
    key "$1"
    openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days "$days" -out "$1.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# leaf NAME CA SUBJECT EXT [openssl x509 validity options...]
leaf() {
    local name=$1 issuer=$2 subj=$3 ext=$4
    shift 4
    key "$name"
    openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
    printf '%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' "$ext" > "$name.ext"
    openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" -CAcreateserial \
        -extfile "$name.ext" -out "$name.pem" "$@" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}

ca ca "heprouter test CA"
ca rogue-ca "rogue test CA"
leaf server ca "/CN=localhost" "$san_server" -days "$days"
leaf client ca "/O=heprouter tests/CN=kamailio-a" "subjectAltName=DNS:kamailio-a" -days "$days"
leaf client-b ca "/O=heprouter tests/CN=kamailio-b" "subjectAltName=DNS:kamailio-b" -days "$days"
leaf other ca "/CN=other.example" "subjectAltName=DNS:other.example" -days "$days"
leaf rogue rogue-ca "/O=heprouter tests/CN=kamailio-a" "$san_server" -days "$days"
# expired: `openssl x509 -req` takes no start date, so the CA signs it with `openssl ca`
key expired
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr 2>/dev/null
mkdir -p ca.db
: > ca.db/index.txt
echo 1000 > ca.db/serial
cat > expired.cnf <<EOF
[ca]
default_ca = test
[test]
database = ca.db/index.txt
new_certs_dir = ca.db
serial = ca.db/serial
default_md = sha256
policy = any
x509_extensions = ext
[any]
commonName = supplied
[ext]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth,clientAuth
$san_server
EOF
openssl ca -batch -notext -config expired.cnf -keyfile ca.key -cert ca.pem -in expired.csr \
    -out expired.pem -startdate 20200101000000Z -enddate 20200102000000Z 2>/dev/null
rm -rf expired.csr expired.cnf ca.db ./*.srl
openssl x509 -in expired.pem -noout -checkend 0 >/dev/null 2>&1 && { echo "mkcerts: expired.pem is not expired" >&2; exit 1; }
chmod 600 ./*.key
echo "mkcerts: certificates in $dir"
