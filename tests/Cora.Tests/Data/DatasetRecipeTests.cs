using System.Text;
using Cora.Cli;
using Microsoft.ML.Cora.Data;

namespace Cora.Tests;

[TestClass]
public class DatasetRecipeTests
{
    private static long T(int y, int m, int d) => new DateTimeOffset(y, m, d, 12, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds();

    [TestMethod]
    public void MovieLens1MRecipeRowByRow()
    {
        using var tmp = TestPaths.Temp();
        File.WriteAllText(tmp["movies.dat"], "10::Amélie, \"Le Fabuleux\" (2001)::Comedy\n11::Tab\tTitle (1999)::Drama\n12::Heat (1995)::Action\n13::Up, Up (2000)::Drama\n", Encoding.Latin1);
        File.WriteAllText(tmp["ratings.dat"], string.Join("\n",
            $"1::10::5::{T(2001, 5, 15)}",     // before the window: dropped
            $"1::10::5::{T(2001, 6, 10)}",     // train, liked
            $"1::11::2::{T(2001, 7, 1)}",      // train, disliked
            $"1::12::4::{T(2002, 5, 1)}",      // valid (months 11-15)
            $"2::10::4::{T(2002, 5, 2)}",      // valid, user 2 unseen in train -> cold
            $"1::13::5::{T(2002, 10, 1)}",     // test
            $"1::13::5::{T(2003, 3, 1)}") + "\n", Encoding.Latin1);  // after 20 months: dropped
        var ds = DatasetRecipes.MovieLens1M(tmp["ratings.dat"], tmp["movies.dat"]);
        Assert.AreEqual(2, ds.Train.Count);
        Assert.AreEqual(new Interaction(1, 10, true, T(2001, 6, 10), true, Array.Empty<int>()), ds.Train[0] with { History = Array.Empty<int>() });
        CollectionAssert.AreEqual(new[] { 10 }, ds.Train[1].History);
        Assert.IsFalse(ds.Train[1].Label);
        Assert.AreEqual(2, ds.Valid.Count);
        Assert.AreEqual((1, 12, true, false), (ds.Valid[0].UserId, ds.Valid[0].ItemId, ds.Valid[0].Label, ds.Valid[0].NotCold));
        CollectionAssert.AreEqual(new[] { 10 }, ds.Valid[0].History, "only liked items, oldest first (item 12 is cold: never in train)");
        Assert.AreEqual((2, 10, false), (ds.Valid[1].UserId, ds.Valid[1].ItemId, ds.Valid[1].NotCold));
        Assert.AreEqual(1, ds.Test.Count);
        CollectionAssert.AreEqual(new[] { 10, 12 }, ds.Test[0].History);
        Assert.IsFalse(ds.Test[0].NotCold, "item 13 never occurs in train");
        Assert.AreEqual("Amélie, \"Le Fabuleux\" (2001)", ds.Items.Title(10));
        Assert.AreEqual("Tab Title (1999)", ds.Items.Title(11));

        ds.Write(tmp["out"]);
        var back = InteractionTsv.Read(Path.Combine(tmp["out"], "test.tsv"));
        Assert.AreEqual(ds.Test[0] with { History = back[0].History }, back[0]);
        CollectionAssert.AreEqual(ds.Test[0].History, back[0].History);
        Assert.AreEqual("Amélie, \"Le Fabuleux\" (2001)", ItemCatalog.Read(Path.Combine(tmp["out"], "items.tsv")).Title(10));
    }

    [TestMethod]
    public void RecipeErrorsNameFileAndLineAndOutputIsAcceptedByTrain()
    {
        using var tmp = TestPaths.Temp();
        File.WriteAllText(tmp["movies.dat"], "10::Heat (1995)::Action\n11::::Drama\n", Encoding.Latin1);
        void Bad(string ratings, string expect)
        {
            File.WriteAllText(tmp["r.dat"], ratings, Encoding.Latin1);
            var e = Assert.ThrowsExactly<InvalidDataException>(() => DatasetRecipes.MovieLens1M(tmp["r.dat"], tmp["movies.dat"]));
            StringAssert.Contains(e.Message, tmp["r.dat"] + ": line 2");
            StringAssert.Contains(e.Message, expect);
        }
        Bad($"1::10::5::{T(2001, 6, 10)}\n1::10::5::soon\n", "Timestamp 'soon' is not a non-negative integer");
        Bad($"1::10::5::{T(2001, 6, 10)}\n-3::10::5::{T(2001, 6, 11)}\n", "UserID '-3' is not a non-negative integer");
        File.WriteAllText(tmp["a.jsonl"], "{\"reviewerID\":\"u\",\"asin\":\"a\",\"overall\":5,\"unixReviewTime\":1}\n{\"reviewerID\":null,\"asin\":\"a\",\"overall\":5,\"unixReviewTime\":1}\n");
        File.WriteAllText(tmp["m.jsonl"], "{\"asin\":\"a\",\"title\":\"T\"}\n");
        var ea = Assert.ThrowsExactly<InvalidDataException>(() => DatasetRecipes.Amazon2018(tmp["a.jsonl"], tmp["m.jsonl"]));
        StringAssert.Contains(ea.Message, tmp["a.jsonl"] + ": line 2");
        // An untitled movie's ratings are left out and counted; the written files pass `cora train`'s checks.
        File.WriteAllText(tmp["r.dat"], string.Join("\n", $"1::10::5::{T(2001, 6, 10)}", $"1::11::5::{T(2001, 6, 11)}", $"2::10::2::{T(2001, 6, 12)}", $"2::10::5::{T(2002, 5, 1)}", $"1::10::2::{T(2002, 6, 1)}", $"1::10::4::{T(2002, 10, 1)}") + "\n", Encoding.Latin1);
        var ds = DatasetRecipes.MovieLens1M(tmp["r.dat"], tmp["movies.dat"]);
        Assert.AreEqual((1, 1), ds.DroppedUntitled);
        Assert.IsFalse(ds.Train.Concat(ds.Valid).Any(r => r.ItemId == 11 || r.History.Contains(11)));
        ds.Write(tmp["out"]);
        var (code, _, err) = CliTests.Cli("train", "--train", Path.Combine(tmp["out"], "train.tsv"), "--valid", Path.Combine(tmp["out"], "valid.tsv"),
            "--items", Path.Combine(tmp["out"], "items.tsv"), "--llm", Slice.LlmPath, "--out", tmp["m.zip"], "--max-steps", "1", "--mf-dim", "4", "--mf-epochs", "1",
            "--generator", "compact");
        Assert.AreEqual(0, code, err);
    }

    [TestMethod]
    public void MovieLens100KRecipeSplitsByTime()
    {
        using var tmp = TestPaths.Temp();
        File.WriteAllText(tmp["u.item"], string.Join("\n", Enumerable.Range(1, 10).Select(i => $"{i}|Film {i}, the \"{(char)('a' + i)}\" é (1995)|01-Jan-1995||http://x|0")) + "\n", Encoding.Latin1);
        File.WriteAllText(tmp["u.data"], string.Join("\n", Enumerable.Range(1, 10).Select(i => $"{1 + i % 2}\t{i}\t{(i % 3 == 0 ? 2 : 5)}\t{880000000 + 1000 * (11 - i)}")) + "\n");
        var ds = DatasetRecipes.MovieLens100K(tmp["u.data"], tmp["u.item"]);
        Assert.AreEqual((8, 1, 1), (ds.Train.Count, ds.Valid.Count, ds.Test.Count));
        Assert.AreEqual(10, ds.Train[0].ItemId, "oldest first");
        Assert.AreEqual(1, ds.Test[0].ItemId, "newest last");
        Assert.IsTrue(ds.Train.Zip(ds.Train.Skip(1)).All(p => p.First.Timestamp <= p.Second.Timestamp));
        Assert.AreEqual("Film 3, the \"d\" é (1995)", ds.Items.Title(3));
    }

    [TestMethod]
    public void AmazonRecipeRowByRow()
    {
        using var tmp = TestPaths.Temp();
        string R(string u, string a, double s, long t) => $"{{\"reviewerID\": \"{u}\", \"asin\": \"{a}\", \"overall\": {s.ToString(System.Globalization.CultureInfo.InvariantCulture)}, \"unixReviewTime\": {t}}}";
        File.WriteAllLines(tmp["reviews.json"], new[]
        {
            R("uA", "b1", 5, T(2016, 6, 1)),    // 2016: dropped
            R("uA", "b1", 5, T(2017, 1, 5)), R("uA", "b2", 3, T(2017, 2, 5)), R("uB", "b1", 5, T(2017, 3, 5)), R("uB", "b2", 5, T(2017, 4, 5)),
            R("uA", "b2", 5, T(2017, 12, 2)), R("uB", "b1", 4, T(2017, 12, 3)), R("uA", "b1", 5, T(2017, 12, 20)), R("uB", "b2", 5, T(2017, 12, 21)),
            R("uC", "b1", 5, T(2017, 5, 1)),    // uC has 1 rating in 2017: filtered (needs > 1 here)
        });
        File.WriteAllLines(tmp["meta.json"], new[]
        {
            "{\"asin\": \"b1\", \"title\": \"Café, \\\"Tabs\\\"\\there\"}",
            "{\"asin\": \"b2\", \"title\": \"Plain\"}",
        });
        var ds = DatasetRecipes.Amazon2018(tmp["reviews.json"], tmp["meta.json"], minRatings: 1);
        Assert.AreEqual(4, ds.Train.Count);
        Assert.AreEqual(2, ds.Valid.Count, "December halved: first half valid");
        Assert.AreEqual(2, ds.Test.Count);
        Assert.IsTrue(ds.Train.All(r => r.UserId is 1 or 2), "uC filtered out");
        Assert.AreEqual((1, 1, true), (ds.Train[0].UserId, ds.Train[0].ItemId, ds.Train[0].Label));
        Assert.IsFalse(ds.Train[1].Label, "3 stars is not a like");
        Assert.AreEqual(T(2017, 12, 2), ds.Valid[0].Timestamp);
        Assert.IsFalse(ds.Valid[1].Label, "4 stars is not a like");
        Assert.AreEqual(T(2017, 12, 20), ds.Test[0].Timestamp);
        CollectionAssert.AreEqual(new[] { 1, 2 }, ds.Test[0].History, "uA liked b1 (Jan) and b2 (Dec 2)");
        Assert.AreEqual("Café, \"Tabs\" here", ds.Items.Title(1));
    }

    [TestMethod]
    public void SharedMovieLens100KConvertsWithExpectedCounts()
    {
        using var tmp = TestPaths.Temp();
        var o = new StringWriter(); var e = new StringWriter();
        int code = CoraCli.Run(new[] { "data", "movielens-100k", "--ratings", TestPaths.Shared("data", "ml-100k", "u.data"),
            "--movies", TestPaths.Shared("data", "ml-100k", "u.item"), "--out", tmp.Path }, o, e);
        Assert.AreEqual(0, code, e.ToString());
        StringAssert.Contains(o.ToString(), "train 80000, valid 10000, test 10000 rows; 1682 items; users 943");
        var train = InteractionTsv.Read(tmp["train.tsv"]);
        Assert.AreEqual(80000, train.Count);
        Assert.AreEqual(55375 / 100000.0, (train.Count(r => r.Label) + InteractionTsv.Read(tmp["valid.tsv"]).Count(r => r.Label) + InteractionTsv.Read(tmp["test.tsv"]).Count(r => r.Label)) / 100000.0, 1e-9,
            "rating > 3: 34174 + 21201 of the known histogram");
        Assert.AreEqual("Toy Story (1995)", ItemCatalog.Read(tmp["items.tsv"]).Title(1));
    }
}
