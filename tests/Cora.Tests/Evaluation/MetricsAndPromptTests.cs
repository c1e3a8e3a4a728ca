using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Evaluation;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Prompting;

namespace Cora.Tests;

[TestClass]
public class MetricsAndPromptTests
{
    [TestMethod]
    public void AucMatchesHandComputedCasesWithTies()
    {
        // positives {0.8, 0.4}, negatives {0.4, 0.1}: pairs (0.8>0.4)=1, (0.8>0.1)=1, (0.4=0.4)=0.5, (0.4>0.1)=1 -> 3.5/4
        Assert.AreEqual(0.875, Metrics.Auc(new[] { 0.8f, 0.4f, 0.4f, 0.1f }, new[] { true, true, false, false }), 1e-12);
        Assert.AreEqual(1.0, Metrics.Auc(new[] { 0.1f, 0.9f }, new[] { false, true }), 1e-12);
        Assert.AreEqual(0.0, Metrics.Auc(new[] { 0.1f, 0.9f }, new[] { true, false }), 1e-12);
        Assert.AreEqual(0.5, Metrics.Auc(new[] { 0.3f, 0.3f, 0.3f }, new[] { true, false, true }), 1e-12);
        Assert.IsTrue(double.IsNaN(Metrics.Auc(new[] { 0.3f, 0.5f }, new[] { true, true })));
    }

    [TestMethod]
    public void UaucSkipsSingleRowAndSingleClassUsers()
    {
        var scores = new[] { 0.9f, 0.1f, /*u2*/ 0.2f, 0.8f, 0.5f, /*u3 single row*/ 0.7f, /*u4 one class*/ 0.3f, 0.6f };
        var labels = new[] { true, false, true, false, true, true, false, false };
        var users = new[] { 1, 1, 2, 2, 2, 3, 4, 4 };
        // u1: AUC 1. u2: positives {0.2, 0.5}, negative {0.8}: 0/2 -> 0. Mean = 0.5.
        var (uauc, counted, skipped) = Metrics.Uauc(scores, labels, users);
        Assert.AreEqual(0.5, uauc, 1e-12);
        Assert.AreEqual(2, counted);
        Assert.AreEqual(2, skipped);
    }

    [TestMethod]
    public void LogLossFromLogitsAndWarmColdSplit()
    {
        var logits = new[] { 0f, 2f, -1f };
        var labels = new[] { true, false, false };
        double expected = (Math.Log(2) + Math.Log(1 + Math.Exp(2)) + Math.Log(1 + Math.Exp(-1))) / 3;
        Assert.AreEqual(expected, Metrics.LogLoss(logits, labels), 1e-9);
        var m = Metrics.Evaluate(new[] { 0.9f, 0.1f, 0.3f, 0.7f }, new[] { true, false, true, false }, new[] { 1, 1, 2, 2 }, new[] { true, true, false, false });
        Assert.AreEqual(1.0, m.Warm.Auc, 1e-12);
        Assert.AreEqual(0.0, m.Cold.Auc, 1e-12);
        Assert.AreEqual(2, m.Warm.Rows);
        Assert.AreEqual(4, m.Overall.Rows);
    }

    [TestMethod]
    public void PromptBuilderReproducesReferencePromptByteForByte()
    {
        var r = ReferenceLogits.Read(TestPaths.Shared("models", "stories260K", "reference", "logits-movie-prompt.txt"));
        var b = new PromptBuilder();
        string text = b.Text(new[] { "Star Wars: Episode IV - A New Hope (1977)", "Blade Runner (1982)" }, "Seven (Se7en) (1995)");
        Assert.AreEqual(r.Prompt, text);
        var tok = new Llama2cTokenizer(Path.Combine(TestPaths.StoriesDir, "tok512.bin"));
        var p = b.Tokenize(new[] { "Star Wars: Episode IV - A New Hope (1977)", "Blade Runner (1982)" }, "Seven (Se7en) (1995)", tok, 512);
        CollectionAssert.AreEqual(r.PromptIds, p.Ids);
    }

    [TestMethod]
    public void PromptTemplateDetails()
    {
        var b = new PromptBuilder();
        string expected = "#Question: A user has given high ratings to the following movies: unkow. Leverage the information to predict whether the user would enjoy the movie titled \"X\"? Answer with \"Yes\" or \"No\". \\n#Answer:";
        Assert.AreEqual(expected, b.Text(Array.Empty<string>(), "X"));
        var twelve = Enumerable.Range(1, 12).Select(i => $"T{i}").ToArray();
        string t = b.Text(twelve, "Y");
        StringAssert.Contains(t, "movies: \"T3\", \"T4\"");        // the 10 most recent, oldest first
        Assert.IsFalse(t.Contains("\"T2\""));
        var books = new PromptBuilder(new PromptOptions { ItemNoun = "book", ItemNounPlural = "books" });
        StringAssert.StartsWith(books.Text(new[] { "A" }, "B"), "#Question: A user has given high ratings to the following books: \"A\". Leverage the information to predict whether the user would enjoy the book titled \"B\"?");
    }

    [TestMethod]
    public void LongPromptsDropOldestTitlesNeverTheTarget()
    {
        var tok = new Llama2cTokenizer(Path.Combine(Path.GetDirectoryName(Slice.Llama2cPath)!, "tok512.bin"));
        var b = new PromptBuilder();
        var hist = Enumerable.Range(0, 10).Select(i => $"A rather long movie title number {i} (1999)").ToArray();
        var full = b.Tokenize(hist, "Target (2000)", tok, 10_000);
        var cut = b.Tokenize(hist, "Target (2000)", tok, full.Ids.Length - 5);
        Assert.IsTrue(cut.Ids.Length <= full.Ids.Length - 5);
        Assert.AreEqual(9, cut.TitlesUsed);
        string text = tok.Decode(cut.Ids);
        StringAssert.Contains(text, "number 9");
        Assert.IsFalse(text.Contains("number 0"), "the oldest title goes first");
        StringAssert.Contains(text, "\"Target (2000)\"");
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => b.Tokenize(hist, "Target (2000)", tok, 20));
        StringAssert.Contains(e.Message, "\"Target (2000)\"");
    }

    [TestMethod]
    public void SharedCollmSplitReadsWithDocumentedCounts()
    {
        var train = InteractionTsv.Read(TestPaths.Shared("data", "ml-1m-collm", "train.tsv"));
        var valid = InteractionTsv.Read(TestPaths.Shared("data", "ml-1m-collm", "valid.tsv"));
        var items = ItemCatalog.Read(TestPaths.Shared("data", "ml-1m-collm", "items.tsv"));
        Assert.AreEqual(33891, train.Count);
        Assert.AreEqual(10401, valid.Count);
        Assert.AreEqual(3255, items.Count);
        Assert.AreEqual(0.5368, train.Count(r => r.Label) / (double)train.Count, 1e-4);
        Assert.AreEqual("Shawshank Redemption, The (1994)", items.Title(1));
        Assert.IsTrue(valid.All(r => r.History.All(h => h != 0)), "padding id 0 is dropped from histories");
    }
}
