# Sourced (not executed) by the official mongo image's docker-entrypoint.sh, once, on the first start with an
# empty data volume, while a temporary mongod runs without auth and without --replSet. `mongo` (an array holding
# the shell command) is defined by that script.
#
# Creates the application's own user, so MONGODB_URI does not carry the root password:
#   MONGO_APP_USERNAME / MONGO_APP_PASSWORD  (env file)  user in the admin database (authSource=admin)
#   MONGODB_NAME                              (env file)  the database it may use: readWrite + dbAdmin
# Without MONGO_APP_USERNAME nothing is created and the app must use the root user.
if [ -n "${MONGO_APP_USERNAME:-}" ] && [ -n "${MONGO_APP_PASSWORD:-}" ]; then
	echo "10-create-app-user: creating user ${MONGO_APP_USERNAME} for database ${MONGODB_NAME:-report_platform}"
	"${mongo[@]}" admin --eval '
		const dbName = process.env.MONGODB_NAME || "report_platform";
		db.getSiblingDB("admin").createUser({
			user: process.env.MONGO_APP_USERNAME,
			pwd: process.env.MONGO_APP_PASSWORD,
			roles: [{ role: "readWrite", db: dbName }, { role: "dbAdmin", db: dbName }],
		});
	'
else
	echo "10-create-app-user: MONGO_APP_USERNAME/MONGO_APP_PASSWORD not set, no application user created"
fi
