// Healthcheck of the `mongo` service (docker-compose.yml), run by mongosh inside the container:
//   mongosh --quiet --norc "mongodb://127.0.0.1:27017/admin?directConnection=true" --file THIS_FILE
// 1. authenticates as the root user from the env file (read from the environment, never from argv);
// 2. if the replica set has not been initiated yet (first start), runs rs.initiate() with this one member and
//    reports "unhealthy" for now;
// 3. healthy only once this member is PRIMARY, so services that depend on `service_healthy` start against a
//    writable replica set (transactions need one).
// The member host must be the name clients use (the compose service name), or drivers connecting with
// ?replicaSet=rs0 cannot reach the member the replica set advertises.
const replSetName = process.env.MONGO_REPLICA_SET_NAME || "rs0";
const memberHost = process.env.MONGO_REPLICA_HOST || "mongo:27017";

const admin = db.getSiblingDB("admin");
admin.auth(process.env.MONGO_INITDB_ROOT_USERNAME, process.env.MONGO_INITDB_ROOT_PASSWORD);

let status;
try {
  status = admin.runCommand({ replSetGetStatus: 1 });
} catch (error) {
  status = { ok: 0, code: error.code, codeName: error.codeName, errmsg: String(error) };
}

if (status.ok !== 1) {
  if (status.code === 94 || status.codeName === "NotYetInitialized") {
    const result = admin.runCommand({
      replSetInitiate: { _id: replSetName, members: [{ _id: 0, host: memberHost }] },
    });
    print(`replica set ${replSetName} not initiated: replSetInitiate -> ${JSON.stringify(result)}`);
  } else {
    print(`replSetGetStatus failed: ${JSON.stringify(status)}`);
  }
  quit(1);
}

const self = status.members.find((member) => member.self);
if (!self || self.stateStr !== "PRIMARY") {
  print(`member state: ${self ? self.stateStr : "unknown"}`);
  quit(1);
}
quit(0);
