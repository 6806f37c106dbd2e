// berthd's database: the schema is brought up to date once, survives a reopen, refuses a newer
// one, and each call is one transaction with errors as values.

#include <sqlite3.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "../lxd/temp_dir.hpp"
#include "daemon/db/database.hpp"

namespace berth::daemon {
namespace {

using lxd::testing::TempDir;

TrustedCertificate cert(const std::string& fp, const std::string& name) {
  TrustedCertificate c;
  c.fingerprint = fp;
  c.name = name;
  c.certificate = "-----BEGIN CERTIFICATE-----\n...\n";
  c.projects = {"default", "web"};
  return c;
}

TEST(Database, CreatesTheSchemaPrivatelyAndKeepsWhatWasStored) {
  TempDir tmp;
  const auto path = tmp.path() / "berthd.db";
  {
    auto db = Database::open(path);
    ASSERT_TRUE(db) << db.error().message;
    EXPECT_EQ((*db)->schema_version(), Database::latest_schema_version());
    ASSERT_TRUE((*db)->set_config({{"core.https_address", "127.0.0.1:8443"}, {"user.a", "b"}}));
    ASSERT_TRUE((*db)->add_certificate(cert("aa", "one")));
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto db = Database::open(path);
  ASSERT_TRUE(db) << db.error().message;
  auto config = (*db)->config();
  ASSERT_TRUE(config);
  EXPECT_EQ(config->size(), 2u);
  EXPECT_EQ(config->at("user.a"), "b");
  auto found = (*db)->certificate("aa");
  ASSERT_TRUE(found && found->has_value());
  EXPECT_EQ((*found)->name, "one");
  EXPECT_EQ((*found)->projects, (std::vector<std::string>{"default", "web"}));
}

TEST(Database, AddingAFingerprintTwiceIsAConflictAndChangesNothing) {
  TempDir tmp;
  auto db = Database::open(tmp.path() / "berthd.db");
  ASSERT_TRUE(db);
  ASSERT_TRUE((*db)->add_certificate(cert("aa", "one")));
  auto again = (*db)->add_certificate(cert("aa", "two"));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind, lxd::ErrorKind::conflict);
  EXPECT_EQ((*(*db)->certificate("aa"))->name, "one");
}

TEST(Database, RemovingOrUpdatingWhatIsNotThereIsNotFound) {
  TempDir tmp;
  auto db = Database::open(tmp.path() / "berthd.db");
  ASSERT_TRUE(db);
  auto removed = (*db)->remove_certificate("nope");
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().kind, lxd::ErrorKind::not_found);
  auto updated = (*db)->update_certificate(cert("nope", "x"));
  ASSERT_FALSE(updated);
  EXPECT_EQ(updated.error().kind, lxd::ErrorKind::not_found);
  ASSERT_TRUE((*db)->add_certificate(cert("bb", "one")));
  ASSERT_TRUE((*db)->remove_certificate("bb"));
  EXPECT_FALSE((*(*db)->certificate("bb")).has_value());
}

TEST(Database, SetConfigReplacesTheWholeConfig) {
  TempDir tmp;
  auto db = Database::open(tmp.path() / "berthd.db");
  ASSERT_TRUE(db);
  ASSERT_TRUE((*db)->set_config({{"a", "1"}, {"b", "2"}}));
  ASSERT_TRUE((*db)->set_config({{"b", "3"}}));
  auto config = (*db)->config();
  ASSERT_TRUE(config);
  EXPECT_EQ(*config, (std::map<std::string, std::string>{{"b", "3"}}));
}

TEST(Database, ADatabaseFromANewerBerthdIsRefused) {
  TempDir tmp;
  const auto path = tmp.path() / "berthd.db";
  { ASSERT_TRUE(Database::open(path)); }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "PRAGMA user_version = 999", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  auto db = Database::open(path);
  ASSERT_FALSE(db);
  EXPECT_NE(db.error().message.find("newer berthd"), std::string::npos) << db.error().message;
}

TEST(Database, AFileThatIsNotADatabaseIsAnErrorNotACrash) {
  TempDir tmp;
  const auto path = tmp.path() / "berthd.db";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("this is not SQLite, but it is long enough to look like a header of some kind..........", f);
    std::fclose(f);
  }
  auto db = Database::open(path);
  ASSERT_FALSE(db);
  EXPECT_NE(db.error().message.find(path.string()), std::string::npos) << db.error().message;
}

TEST(DatabaseDocuments, InsertReplaceRemoveAndRenameInOneTransaction) {
  TempDir tmp;
  auto opened = Database::open(tmp.path() / "berthd.db");
  ASSERT_TRUE(opened) << opened.error().message;
  auto& db = **opened;
  // The default profile comes with the schema.
  auto profile = db.document(DocumentKind::profile, "default");
  ASSERT_TRUE(profile);
  ASSERT_TRUE(profile->has_value());
  EXPECT_EQ((**profile)["devices"]["root"]["path"], "/");

  using Op = DocumentChange::Op;
  ASSERT_TRUE(db.change({{Op::insert, DocumentKind::instance, "c1", {{"name", "c1"}}, {}},
                         {Op::insert, DocumentKind::snapshot, "c1/snap0", {{"name", "snap0"}}, {}},
                         {Op::insert, DocumentKind::snapshot, "c10/snap0", {{"name", "snap0"}}, {}}}));
  auto again = db.change({{Op::insert, DocumentKind::instance, "c1", {{"name", "other"}}, {}}});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind, lxd::ErrorKind::conflict);

  // A failing step undoes the steps before it.
  auto partial = db.change({{Op::insert, DocumentKind::instance, "c2", {{"name", "c2"}}, {}},
                            {Op::replace, DocumentKind::instance, "missing", {{"name", "x"}}, {}}});
  ASSERT_FALSE(partial);
  EXPECT_EQ(partial.error().kind, lxd::ErrorKind::not_found);
  EXPECT_FALSE(db.document(DocumentKind::instance, "c2")->has_value());

  // Renaming an instance's snapshots touches only that instance's.
  ASSERT_TRUE(db.change({{Op::remove, DocumentKind::instance, "c1", nullptr, {}},
                         {Op::insert, DocumentKind::instance, "web", {{"name", "web"}}, {}},
                         {Op::rename_prefix, DocumentKind::snapshot, "c1/", nullptr, "web/"}}));
  auto snaps = db.documents(DocumentKind::snapshot);
  ASSERT_TRUE(snaps);
  ASSERT_EQ(snaps->size(), 2u);
  EXPECT_EQ((*snaps)[0].key, "c10/snap0");
  EXPECT_EQ((*snaps)[1].key, "web/snap0");
  EXPECT_EQ(db.documents(DocumentKind::snapshot, "web/")->size(), 1u);
  ASSERT_TRUE(db.change({{Op::remove_prefix, DocumentKind::snapshot, "web/", nullptr, {}}}));
  EXPECT_EQ(db.documents(DocumentKind::snapshot)->size(), 1u);
  EXPECT_EQ(db.documents(DocumentKind::instance)->size(), 1u);
}

// What Instances::render_all_text's cache is kept by: reads leave the number alone; every change,
// a failed one too (the caller cannot tell what it saw), moves it on.
TEST(Database, TheGenerationMovesOnWithEveryChangeAndOnlyThen) {
  TempDir tmp;
  auto opened = Database::open(tmp.path() / "berthd.db");
  ASSERT_TRUE(opened) << opened.error().message;
  auto& db = **opened;
  using Op = DocumentChange::Op;
  const auto start = db.generation();
  ASSERT_TRUE(db.documents(DocumentKind::instance));
  ASSERT_TRUE(db.document(DocumentKind::profile, "default"));
  ASSERT_TRUE(db.set_config({{"user.a", "b"}}));
  EXPECT_EQ(db.generation(), start);
  ASSERT_TRUE(db.change({{Op::insert, DocumentKind::instance, "c1", {{"name", "c1"}}, {}}}));
  const auto after_insert = db.generation();
  EXPECT_NE(after_insert, start);
  ASSERT_FALSE(db.change({{Op::replace, DocumentKind::instance, "missing", {{"name", "x"}}, {}}}));
  EXPECT_NE(db.generation(), after_insert);
}
}  // namespace
}  // namespace berth::daemon
