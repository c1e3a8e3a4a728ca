using System.Text;

namespace Cora.Tests;

/// <summary>
/// tools/sweep/items.sh: the item catalogs that measure what the item text adds. It runs as written on a small shared folder
/// made here: an ISO-8859-1 movies.dat, as MovieLens ships it, and a UTF-8 items.tsv, as the CoLLM split holds it.
/// </summary>
[TestClass]
public class SweepItemsTests
{
    [TestMethod]
    public void GenresFollowEachTitleAlikeTitlesAreAMovieAndNothingIsWrittenWhenATitleHasNoGenres()
    {
        using var tmp = TestPaths.Temp();
        string shared = Path.Combine(tmp.Path, "shared"), collm = Path.Combine(shared, "data", "ml-1m-collm"), meta = Path.Combine(shared, "data", "ml-1m-meta");
        Directory.CreateDirectory(collm);
        Directory.CreateDirectory(meta);
        File.WriteAllText(Path.Combine(meta, "movies.dat"),
            "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Sting, The (1973)::Comedy|Crime\n3::Misérables, Les (1995)::Drama|Musical\n4::Bossa Nova (1999)::Comedy\n", Encoding.Latin1);
        string items = Path.Combine(collm, "items.tsv");
        File.WriteAllText(items, "iid\ttitle\n1\tSting, The (1973)\n2\tMisérables, Les (1995)\n3\tToy Story (1995)\n");
        var env = new Dictionary<string, string> { ["CORA_SHARED"] = shared };
        string script = Path.Combine(TestPaths.RepoRoot, "tools", "sweep", "items.sh");

        string genres = Path.Combine(tmp.Path, "genres.tsv");
        var (code, output) = TestProcess.Run("bash", $"\"{script}\" genres \"{genres}\"", 60, tmp.Path, env);
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "(3 items)");
        CollectionAssert.AreEqual(new[]
        {
            "iid\ttitle",
            "1\tSting, The (1973), comedy, crime",
            "2\tMisérables, Les (1995), drama, musical",
            "3\tToy Story (1995), animation, children's, comedy",
        }, File.ReadAllLines(genres, Encoding.UTF8));

        string alike = Path.Combine(tmp.Path, "alike.tsv");
        (code, output) = TestProcess.Run("bash", $"\"{script}\" alike \"{alike}\"", 60, tmp.Path, env);
        Assert.AreEqual(0, code, output);
        CollectionAssert.AreEqual(new[] { "iid\ttitle", "1\ta movie", "2\ta movie", "3\ta movie" }, File.ReadAllLines(alike));

        (code, output) = TestProcess.Run("bash", $"\"{script}\" alike \"{alike}\"", 60, tmp.Path, env);
        Assert.AreEqual(2, code, output);
        StringAssert.Contains(output, $"{alike} exists; give a new path");

        // A title movies.dat does not hold: no file, not a catalog with a hole in it.
        File.AppendAllText(items, "4\tNo Such Film (2030)\n");
        string broken = Path.Combine(tmp.Path, "broken.tsv");
        (code, output) = TestProcess.Run("bash", $"\"{script}\" genres \"{broken}\"", 60, tmp.Path, env);
        Assert.AreNotEqual(0, code, output);
        StringAssert.Contains(output, "no genres for item 4 \"No Such Film (2030)\"");
        Assert.AreEqual(0, Directory.GetFiles(tmp.Path, "broken.tsv*").Length, "nothing written, no temporary file left");

        (code, output) = TestProcess.Run("bash", $"\"{script}\" plots \"{broken}\"", 60, tmp.Path, env);
        Assert.AreEqual(2, code, output);
        StringAssert.Contains(output, "unknown variant 'plots' (alike or genres)");

        string nowhere = Path.Combine(tmp.Path, "no-such-folder", "genres.tsv");
        (code, output) = TestProcess.Run("bash", $"\"{script}\" alike \"{nowhere}\"", 60, tmp.Path, env);
        Assert.AreEqual(2, code, output);
        StringAssert.Contains(output, $"the folder of {nowhere} does not exist");
    }
}
