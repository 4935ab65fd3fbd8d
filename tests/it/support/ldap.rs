//! A real directory for the tests: OpenLDAP's `slapd` (Debian package)
//! started as a child on loopback ports with a configuration and a seeded
//! directory made here: users with `mail`, `userPrincipalName` and
//! `displayName` (a small schema adds AD's `userPrincipalName` with a
//! matching rule), a required group, `memberOf` computed by the dynlist
//! overlay, and a certificate for StartTLS and LDAPS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BASE_DN: &str = "dc=corp,dc=example";
pub const SERVICE_DN: &str = "cn=registrar,dc=corp,dc=example";
pub const SERVICE_PASSWORD: &str = "service-secret";
pub const GROUP_DN: &str = "cn=Portal users,ou=groups,dc=corp,dc=example";

/// Rory is in the portal group, Clara is not, Nomail has no address.
pub const RORY_PASSWORD: &str = "rory-directory-pass";
pub const CLARA_PASSWORD: &str = "clara-directory-pass";

const UPN_SCHEMA: &str = "\
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.32473.1.1 NAME 'testAdUser'
  SUP top AUXILIARY MAY ( userPrincipalName ) )
";

fn seed() -> String {
    format!(
        "dn: {BASE_DN}
objectClass: dcObject
objectClass: organization
dc: corp
o: Corp

dn: {SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: registrar
userPassword: {SERVICE_PASSWORD}

dn: ou=people,{BASE_DN}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{BASE_DN}
objectClass: organizationalUnit
ou: groups

dn: uid=rory,ou=people,{BASE_DN}
objectClass: inetOrgPerson
objectClass: testAdUser
uid: rory
cn: Rory Williams
sn: Williams
displayName: Rory Williams
mail: rory@corp.example
userPrincipalName: rory.williams@corp.example
userPassword: {RORY_PASSWORD}

dn: uid=clara,ou=people,{BASE_DN}
objectClass: inetOrgPerson
objectClass: testAdUser
uid: clara
cn: Clara Oswald
sn: Oswald
displayName: Clara Oswald
mail: clara@corp.example
userPrincipalName: clara@corp.example
userPassword: {CLARA_PASSWORD}

dn: {GROUP_DN}
objectClass: groupOfNames
cn: Portal users
member: uid=rory,ou=people,{BASE_DN}
"
    )
}

/// The running slapd; stopped on drop.
pub struct Slapd {
    /// `ldap://127.0.0.1:PORT` (plain, StartTLS on request).
    pub ldap_url: String,
    /// `ldaps://127.0.0.1:PORT`.
    pub ldaps_url: String,
    /// The CA (self-signed certificate) the TLS listeners use.
    pub ca_file: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Slapd {
    /// Writes the configuration, seeds the directory with slapadd and starts
    /// slapd, retrying on other ports if one is taken.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path();
        std::fs::create_dir(path.join("db")).expect("db dir");
        std::fs::write(path.join("upn.schema"), UPN_SCHEMA).expect("schema");
        std::fs::write(path.join("seed.ldif"), seed()).expect("seed");
        let certificate = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("a certificate");
        let ca_file = path.join("cert.pem");
        std::fs::write(&ca_file, certificate.cert.pem()).expect("cert");
        std::fs::write(
            path.join("key.pem"),
            certificate.signing_key.serialize_pem(),
        )
        .expect("key");
        std::fs::write(path.join("slapd.conf"), config(path)).expect("config");
        let added = Command::new(program("slapadd"))
            .args(["-q", "-f"])
            .arg(path.join("slapd.conf"))
            .arg("-l")
            .arg(path.join("seed.ldif"))
            .output()
            .expect("run slapadd (apt-get install slapd)");
        assert!(
            added.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        for _ in 0..5 {
            let (plain, tls) = (free_port(), free_port());
            let ldap_url = format!("ldap://127.0.0.1:{plain}");
            let ldaps_url = format!("ldaps://127.0.0.1:{tls}");
            let mut child = Command::new(program("slapd"))
                .args(["-d", "none", "-h"])
                .arg(format!("{ldap_url}/ {ldaps_url}/"))
                .arg("-f")
                .arg(path.join("slapd.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start slapd");
            if ready(&ldap_url, &mut child).await {
                return Self {
                    ldap_url,
                    ldaps_url,
                    ca_file,
                    child: Some(child),
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("slapd did not start");
    }

    /// Stops the server (to test a directory that is down).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A program of Debian's slapd package: in /usr/sbin, which an ordinary
/// user's PATH may lack.
fn program(name: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from(name)
    }
}

/// A loopback port free a moment ago (slapd takes its ports on the command
/// line; if one was taken meanwhile, slapd is started again on others).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/dyngroup.schema
include {d}/upn.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload dynlist
pidfile {d}/slapd.pid
TLSCertificateFile {d}/cert.pem
TLSCertificateKeyFile {d}/key.pem
database mdb
maxsize 16777216
suffix \"{BASE_DN}\"
rootdn \"cn=admin,{BASE_DN}\"
rootpw admin-secret
directory {d}/db
overlay dynlist
dynlist-attrset groupOfURLs memberURL member+memberOf@groupOfNames
"
    )
}

/// Waits until a real bind succeeds, or slapd exits (a port in use).
async fn ready(url: &str, child: &mut Child) -> bool {
    for _ in 0..200 {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok((conn, mut ldap)) = ldap3::LdapConnAsync::new(url).await {
            ldap3::drive!(conn);
            let bound = ldap
                .simple_bind(SERVICE_DN, SERVICE_PASSWORD)
                .await
                .and_then(ldap3::LdapResult::success);
            let _ = ldap.unbind().await;
            if bound.is_ok() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}
