using Microsoft.ML;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Methods;
using TorchSharp;
using static TorchSharp.torch;

namespace Cora.Tests;

/// <summary>MF's <c>--mf-history</c>: a row's liked history read into the user embedding through a fitted ridge map.</summary>
[TestClass]
public class UserHistoryTests
{
    private const int K = 4, UserCount = 60, ItemCount = 30;

    /// <summary>
    /// MF tables where every user's embedding is exactly W_true times the mean of their liked items' embeddings, and the training
    /// rows (each user's liked items, plus one disliked item) that say so.
    /// </summary>
    private static (MatrixFactorization Mf, List<Interaction> Train, float[,] Items, float[,] Map, Dictionary<int, int[]> Liked) Planted()
    {
        var rng = new Random(7);
        var items = new float[ItemCount, K];
        for (int i = 0; i < ItemCount; i++) for (int k = 0; k < K; k++) items[i, k] = (float)(rng.NextDouble() * 40 - 20);
        var map = new float[K, K];
        for (int a = 0; a < K; a++) for (int b = 0; b < K; b++) map[a, b] = (float)(rng.NextDouble() * 0.2 - 0.1);
        var liked = new Dictionary<int, int[]>();
        var userFactors = new List<float>();
        var train = new List<Interaction>();
        for (int u = 1; u <= UserCount; u++)
        {
            var set = Enumerable.Range(1, ItemCount).OrderBy(_ => rng.Next()).Take(3 + rng.Next(6)).ToArray();
            liked[u] = set;
            userFactors.AddRange(Estimate(items, map, set));
            foreach (var i in set) train.Add(new Interaction(u, i, true, 0, true, Array.Empty<int>()));
            int disliked = Enumerable.Range(1, ItemCount).First(i => !set.Contains(i));
            train.Add(new Interaction(u, disliked, false, 0, true, Array.Empty<int>()));
        }
        var itemFactors = Enumerable.Range(0, ItemCount).SelectMany(i => Enumerable.Range(0, K).Select(k => items[i, k])).ToList();
        var mf = MatrixFactorization.FromMatrices(userFactors, Enumerable.Range(1, UserCount).Select(u => (long)u).ToList(),
            itemFactors, Enumerable.Range(1, ItemCount).Select(i => (long)i).ToList(), K);
        return (mf, train, items, map, liked);
    }

    /// <summary>
    /// The ridge map as documented, solved here by Gaussian elimination in doubles: (G + p I) W = H^T U with H the training users'
    /// mean liked-item embeddings, U their embeddings, G = H^T H and p = <see cref="CoraDefaults.MfHistoryRidge"/> x trace(G) / k.
    /// </summary>
    private static float[,] RidgeMap(float[,] items, float[,] planted, Dictionary<int, int[]> liked)
    {
        var h = liked.OrderBy(kv => kv.Key).Select(kv => Estimate(items, Identity(), kv.Value)).ToArray();
        var u = liked.OrderBy(kv => kv.Key).Select(kv => Estimate(items, planted, kv.Value)).ToArray();
        var a = new double[K, 2 * K];
        double trace = 0;
        for (int i = 0; i < K; i++) for (int n = 0; n < h.Length; n++) trace += (double)h[n][i] * h[n][i];
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++)
            {
                for (int n = 0; n < h.Length; n++) { a[i, j] += (double)h[n][i] * h[n][j]; a[i, K + j] += (double)h[n][i] * u[n][j]; }
                if (i == j) a[i, j] += CoraDefaults.MfHistoryRidge * trace / K;
            }
        for (int c = 0; c < K; c++)
        {
            for (int r = c + 1; r < K; r++)
            {
                double f = a[r, c] / a[c, c];
                for (int j = c; j < 2 * K; j++) a[r, j] -= f * a[c, j];
            }
        }
        var w = new float[K, K];
        for (int col = 0; col < K; col++)
            for (int r = K - 1; r >= 0; r--)
            {
                double v = a[r, K + col];
                for (int j = r + 1; j < K; j++) v -= a[r, j] * w[j, col];
                w[r, col] = (float)(v / a[r, r]);
            }
        return w;
    }

    private static float[,] Identity()
    {
        var m = new float[K, K];
        for (int i = 0; i < K; i++) m[i, i] = 1;
        return m;
    }

    private static double Cosine(float[] a, float[] b) =>
        a.Zip(b, (x, y) => (double)x * y).Sum() / Math.Sqrt(a.Sum(x => (double)x * x) * b.Sum(x => (double)x * x));

    /// <summary>mean over <paramref name="set"/> of the item rows (ids 1-based), times the map.</summary>
    private static float[] Estimate(float[,] items, float[,] map, IEnumerable<int> set)
    {
        var ids = set.ToArray();
        var mean = new double[K];
        foreach (var i in ids) for (int k = 0; k < K; k++) mean[k] += items[i - 1, k] / (double)ids.Length;
        var u = new float[K];
        for (int b = 0; b < K; b++) for (int a = 0; a < K; a++) u[b] += (float)(mean[a] * map[a, b]);
        return u;
    }

    private static float[] Row(MatrixFactorization mf, Interaction r)
    {
        using var _ = torch.no_grad();
        using var t = mf.UserEmbeddings(new[] { r });
        return t[0].data<float>().ToArray();
    }

    private static void Close(float[] expected, float[] actual, double tolerance, string what)
    {
        double scale = Math.Sqrt(expected.Sum(x => (double)x * x));
        double err = Math.Sqrt(expected.Zip(actual, (e, a) => (double)(e - a) * (e - a)).Sum());
        Assert.IsTrue(err <= tolerance * scale, $"{what}: [{string.Join(", ", actual)}] against [{string.Join(", ", expected)}] (error {err:G3}, scale {scale:G3})");
    }

    [TestMethod]
    public void ColdUsersGetTheirHistoryThroughTheFittedMapAndKnownUsersKeepTheirOwn()
    {
        var (mf, train, items, map, liked) = Planted();
        using var _ = mf;
        var cold = new Interaction(999, 5, true, 0, false, new[] { 0, 3, 8, 21 });
        CollectionAssert.AreEqual(new float[K], Row(mf, cold), "before a map is fitted, an unseen user is the zero vector");

        mf.FitHistoryMap(train, UserHistory.Cold);
        Assert.AreEqual(UserHistory.Cold, mf.History);
        var ridge = RidgeMap(items, map, liked);
        var expected = Estimate(items, ridge, new[] { 3, 8, 21 });
        Close(expected, Row(mf, cold), 1e-3, "unseen user with liked items 3, 8, 21 (0 is padding)");
        // The ridge fit points where the planted map does (the penalty shrinks its length, not its direction).
        Assert.IsTrue(Cosine(Estimate(items, map, new[] { 3, 8, 21 }), Row(mf, cold)) > 0.95, "the estimate follows the planted map");
        // An unknown item in the history is left out of the mean.
        Close(expected, Row(mf, cold with { History = new[] { 3, 8, 21, 4242 } }), 1e-3, "unknown item 4242 ignored");
        CollectionAssert.AreEqual(new float[K], Row(mf, cold with { History = new[] { 0, 4242 } }), "no known liked item: the zero vector");

        var own = Estimate(items, map, liked[7]);
        var known = new Interaction(7, 5, true, 0, true, new[] { 1, 2 });
        Close(own, Row(mf, known), 1e-6, "cold mode: a known user keeps their own embedding whatever the history");

        mf.FitHistoryMap(train, UserHistory.Blend);
        var blended = own.Zip(Estimate(items, ridge, new[] { 1, 2 }), (o, h) => 0.5f * o + 0.5f * h).ToArray();
        Close(blended, Row(mf, known), 1e-3, "blend: half own, half the estimate from liked items 1 and 2");
        Close(own, Row(mf, known with { History = Array.Empty<int>() }), 1e-6, "blend without history: own embedding");
        Close(expected, Row(mf, cold), 1e-3, "blend: an unseen user is the estimate");

        // The scores follow the embeddings: <u, i> with the row's user vector.
        var scores = mf.ScoreRows(new[] { cold });
        var u = Row(mf, cold);
        Assert.AreEqual(Enumerable.Range(0, K).Sum(k => u[k] * items[4, k]), scores[0], 1e-3 * Math.Abs(scores[0]) + 1e-4);

        mf.FitHistoryMap(train, UserHistory.None);
        Assert.AreEqual(UserHistory.None, mf.History);
        CollectionAssert.AreEqual(new float[K], Row(mf, cold), "none: the history is not read again");
    }

    [TestMethod]
    public void TheMapTravelsWithTheSavedStateAndBrokenStatesAreRefused()
    {
        var (mf, train, _, _, _) = Planted();
        using var __ = mf;
        var rows = new[] { new Interaction(999, 5, true, 0, false, new[] { 3, 8 }), new Interaction(4, 6, false, 0, true, new[] { 9 }) };
        mf.FitHistoryMap(train, UserHistory.Blend);
        var state = mf.ExportState();
        using (var copy = (MatrixFactorization)CollaborativeModels.Import("mf", k => state[k]))
        {
            Assert.AreEqual(UserHistory.Blend, copy.History);
            CollectionAssert.AreEqual(mf.ScoreRows(rows), copy.ScoreRows(rows), "the loaded model scores as the saved one");
        }
        // A state saved without the history (MF before the option, or none) loads as None.
        var plain = state.Where(kv => !kv.Key.StartsWith("history_", StringComparison.Ordinal)).ToDictionary();
        using (var copy = (MatrixFactorization)CollaborativeModels.Import("mf", k => plain[k]))
        {
            Assert.AreEqual(UserHistory.None, copy.History);
            Assert.AreEqual(0f, copy.ScoreRows(rows)[0], "an unseen user scores 0 without the map");
        }
        var badMode = new Dictionary<string, Tensor>(state) { ["history_mode"] = torch.tensor(new long[] { 9 }) };
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CollaborativeModels.Import("mf", k => badMode[k])).Message, "'history_mode'");
        var badMap = new Dictionary<string, Tensor>(state) { ["history_map"] = torch.zeros(K, K + 1) };
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CollaborativeModels.Import("mf", k => badMap[k])).Message, $"'history_map' is [{K},{K + 1}], expected [{K},{K}]");
        var noMap = state.Where(kv => kv.Key != "history_map").ToDictionary();
        Assert.ThrowsExactly<KeyNotFoundException>(() => CollaborativeModels.Import("mf", k => noMap[k]));
    }

    [TestMethod]
    public void OnlyMfTakesAHistoryAndEveryEntryPointSaysSo()
    {
        var o = new MatrixFactorizationOptions { History = UserHistory.Blend };
        Assert.AreEqual(UserHistory.Blend, o.HistoryFor(CollaborativeKind.Mf));
        Assert.AreEqual(CoraDefaults.MfUserHistory, new MatrixFactorizationOptions().HistoryFor(CollaborativeKind.Mf));
        Assert.AreEqual(UserHistory.None, new MatrixFactorizationOptions().HistoryFor(CollaborativeKind.LightGcn));
        Assert.AreEqual(UserHistory.None, new MatrixFactorizationOptions { History = UserHistory.None }.HistoryFor(CollaborativeKind.SasRec));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => o.HistoryFor(CollaborativeKind.LightGcn)).Message, "--mf-history blend applies to MF only; LightGCN");
        var rows = Slice.Train.Take(200).ToList();
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => CollaborativeModels.Train(CollaborativeKind.LightGcn, rows, rows, o)).Message, "applies to MF only; LightGCN");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => CollaborativeModels.Train(CollaborativeKind.SasRec, rows, rows, o)).Message, "applies to MF only; SASRec");
        var undefined = new MatrixFactorizationOptions { History = (UserHistory)7 }.Validate("MatrixFactorization.").Single();
        Assert.AreEqual("MatrixFactorization.History", undefined.Option);
        StringAssert.Contains(undefined.Problem, "7 is not one of None, Cold, Blend");

        var ml = new MLContext(seed: 1);
        var trainer = new CoraTrainer.Options { Method = CoraMethod.Mf, CollaborativeFilter = CollaborativeKind.SasRec, MatrixFactorization = o };
        var e = trainer.Validate().Single(x => x.Option == "MatrixFactorization.History");
        StringAssert.Contains(e.Problem, "applies to MF only; SASRec reads no history");
        Assert.IsFalse(new CoraTrainer.Options { Method = CoraMethod.Mf, MatrixFactorization = o }.Validate().Any(x => x.Option.Contains("History")));
        using var given = MatrixFactorization.FromMatrices(new float[] { 1, 0 }, new long[] { 1 }, new float[] { 0, 1 }, new long[] { 2 }, 2);
        var withModel = new CoraTrainer.Options { Method = CoraMethod.Mf, MatrixFactorization = o, CollaborativeModel = given }.Validate().Single(x => x.Option == "MatrixFactorization.History");
        StringAssert.Contains(withModel.Problem, "blend is fitted when Fit trains MF; with CollaborativeModel given, leave it unset.");
    }

    [TestMethod]
    public void TrainingWithHistoryFitsTheMapAndScoresColdUsersFromTheirLikes()
    {
        var train = Slice.Train.Take(3000).ToList();
        var valid = Slice.Valid.Take(400).ToList();
        var options = new MatrixFactorizationOptions { EmbeddingDim = 16, MaxEpochs = 4, Patience = 2, BatchSize = 512 };
        using var none = MatrixFactorization.Train(train, valid, options);
        using var cold = MatrixFactorization.Train(train, valid, options with { History = UserHistory.Cold });
        Assert.AreEqual(UserHistory.None, none.History);
        Assert.AreEqual(UserHistory.Cold, cold.History);
        // Same seed, same tables: the map changes only rows whose user the training rows never saw.
        var seen = valid.Where(r => none.KnowsUser(r.UserId) && none.KnowsItem(r.ItemId) && r.History.Any(i => i != 0 && none.KnowsItem(i))).Take(50).ToList();
        Assert.IsTrue(seen.Count > 0, "the slice needs warm validation rows with a known liked item");
        var unseen = seen.Select((r, j) => r with { UserId = int.MaxValue - j, NotCold = false }).ToList();   // same likes, new users
        CollectionAssert.AreEqual(none.ScoreRows(seen), cold.ScoreRows(seen), "known users score the same");
        Assert.IsTrue(none.ScoreRows(unseen).All(s => s == 0f), "without the history an unseen user scores 0");
        var coldScores = cold.ScoreRows(unseen);
        Assert.AreEqual(unseen.Count, coldScores.Count(s => s != 0f), $"with it every unseen user with a known liked item gets a score: [{string.Join(", ", coldScores)}]");
    }
}
