using Microsoft.ML;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace Cora.Tests;

/// <summary>The CF stages behind one interface: MF, LightGCN (CoRA-LGCN) and SASRec (CoRA-SAS).</summary>
[TestClass]
public class CollaborativeModelTests
{
    private static readonly MatrixFactorizationOptions Small = new() { EmbeddingDim = 16, MaxEpochs = 4, Patience = 2, BatchSize = 512, SequenceLength = 10 };
    private static List<Interaction> Train => Slice.Train.Take(3000).ToList();
    private static List<Interaction> Valid => Slice.Valid.Take(400).ToList();

    [TestMethod]
    public void LightGcnPropagatesOverTheNormalisedGraphAsComputedByHand()
    {
        // 3 users, 4 items; positives: u1-i1, u1-i2, u2-i2, u3-i3 (i4 has no positive: no edges).
        var users = new IdMap(new long[] { 1, 2, 3 });
        var items = new IdMap(new long[] { 1, 2, 3, 4 });
        using var m = new LightGcn(users, items, dim: 2, layers: 1, new[] { (1, 1), (1, 2), (2, 2), (3, 3) });
        using (torch.no_grad())
        {
            m.user_embedding.weight!.copy_(torch.tensor(new float[] { 0, 0, 1, 0, 0, 1, 1, 1 }, new long[] { 4, 2 }));          // row 0 = unknown
            m.item_embedding.weight!.copy_(torch.tensor(new float[] { 0, 0, 2, 0, 0, 2, 1, 0, 3, 3 }, new long[] { 5, 2 }));
        }
        m.eval();
        var (u, i) = m.Propagate();
        // Degrees: u1 2, u2 1, u3 1; i1 1, i2 2, i3 1, i4 0. One layer: e' = sum over neighbours n of e_n / sqrt(deg * deg_n);
        // the output is (e + e') / 2.
        double s2 = Math.Sqrt(2);
        var u1 = new[] { (1 + 2 / s2 + 0 / 2.0) / 2, (0 + 0 / s2 + 2 / 2.0) / 2 };          // neighbours i1 (deg 1), i2 (deg 2)
        var u2 = new[] { (0 + 0 / s2) / 2, (1 + 2 / s2) / 2 };                             // neighbour i2
        var u3 = new[] { (1 + 1.0) / 2, (1 + 0.0) / 2 };                                     // neighbour i3
        var i2 = new[] { (0 + 1 / 2.0 + 0 / s2) / 2, (2 + 0 / 2.0 + 1 / s2) / 2 };          // neighbours u1 (deg 2), u2 (deg 1)
        var i4 = new[] { 3 / 2.0, 3 / 2.0 };                                                 // no edges: its ego embedding / (K + 1)
        void Check(Tensor t, int row, double[] expected, string what)
        {
            var got = t[row].data<float>().ToArray();
            for (int k = 0; k < 2; k++) Assert.AreEqual(expected[k], got[k], 1e-6, $"{what}[{k}]");
        }
        Check(u, 1, u1, "u1"); Check(u, 2, u2, "u2"); Check(u, 3, u3, "u3"); Check(i, 2, i2, "i2"); Check(i, 4, i4, "i4");
        Check(u, 0, new double[] { 0, 0 }, "unknown user");
        var rows = new[] { new Interaction(1, 2, true, 0, true, Array.Empty<int>()), new Interaction(9, 2, true, 0, false, Array.Empty<int>()) };
        var scores = m.ScoreRows(rows);
        Assert.AreEqual(u1[0] * i2[0] + u1[1] * i2[1], scores[0], 1e-6, "score = <u, i> of the propagated tables");
        Assert.AreEqual(0f, scores[1], "an unseen user scores 0");
    }

    [TestMethod]
    public void SasRecIsCausalAndReadsTheRowsHistory()
    {
        using var m = new SasRec(new IdMap(new long[] { 1, 2 }), new IdMap(Enumerable.Range(1, 20).Select(i => (long)i)), 16, 2, 2, 6, 0.0);
        m.eval();
        using var _ = torch.no_grad();
        var a = torch.tensor(new long[] { 0, 3, 5, 7, 9, 11 }).unsqueeze(0);
        var b = torch.tensor(new long[] { 0, 3, 5, 7, 9, 4 }).unsqueeze(0);                 // only the last item differs
        var ha = m.Encode(a); var hb = m.Encode(b);
        Assert.AreEqual(new long[] { 1, 6, 16 }.Length, ha.shape.Length);
        CollectionAssert.AreEqual(new long[] { 1, 6, 16 }, ha.shape);
        Assert.IsTrue(ha.narrow(1, 0, 5).allclose(hb.narrow(1, 0, 5), 0, 1e-6), "a later item cannot change an earlier position");
        Assert.IsFalse(ha.select(1, 5).allclose(hb.select(1, 5), 0, 1e-6), "the last position reads the last item");
        Assert.AreEqual(0f, ha.select(1, 0).abs().max().item<float>(), "padded positions are zero");

        var withHistory = new Interaction(1, 4, true, 0, true, new[] { 2, 3, 0, 5 });
        var noHistory = new Interaction(1, 4, true, 0, true, Array.Empty<int>());
        var e = m.UserEmbeddings(new[] { withHistory, noHistory, withHistory with { UserId = 99 } });
        CollectionAssert.AreEqual(new long[] { 3, 16 }, e.shape);
        Assert.AreEqual(0f, e[1].abs().max().item<float>(), "an empty history gives the zero user vector");
        Assert.IsTrue(e[0].allclose(e[2]), "the user embedding depends on the history, not on the id");
        Assert.AreEqual(0, m.Sequences(new[] { new Interaction(1, 4, true, 0, true, new[] { 500, 600 }) }).Count(x => x != 0), "unseen history items are left out");
    }

    [TestMethod]
    public void SasRecUserEmbeddingsInLengthGroupsEqualTheFullWindow()
    {
        // Histories of 0 to 30 items against a window of 12: groups by length, trimmed padding and the last-position-only final block
        // must give what one padded batch of the whole window gives, values and gradients.
        using var m = new SasRec(new IdMap(new long[] { 1 }), new IdMap(Enumerable.Range(1, 40).Select(i => (long)i)), 16, 2, 2, 12, 0.0);
        var rnd = new Random(5);
        var rows = Enumerable.Range(0, 23).Select(i => new Interaction(1, 3, true, 0, true,
            Enumerable.Range(0, i == 4 ? 0 : rnd.Next(1, 31)).Select(_ => rnd.Next(1, 41)).ToArray())).ToList();
        m.train();                                                                                   // dropout 0: deterministic
        var plain = m.Encode(torch.tensor(m.Sequences(rows), new long[] { rows.Count, 12 })).select(1, 11);   // [B, d]
        var fast = m.UserEmbeddings(rows);
        Assert.IsTrue(plain.allclose(fast, 1e-5, 1e-6), $"values differ by {plain.sub(fast).abs().max().item<float>():E2}");
        Assert.AreEqual(0f, fast[4].abs().max().item<float>(), "the empty history is the zero vector");
        var w = torch.randn(rows.Count, 16);
        var gPlain = torch.autograd.grad(new[] { plain.mul(w).sum() }, m.parameters().ToArray(), allow_unused: true);
        var gFast = torch.autograd.grad(new[] { fast.mul(w).sum() }, m.parameters().ToArray(), allow_unused: true);
        var names = m.named_parameters().Select(p => p.name).ToArray();
        double largest = gPlain.Where(g => g is not null && !g.IsInvalid).Max(g => (double)g.abs().max().item<float>());
        for (int i = 0; i < gPlain.Count; i++)
        {
            if (gPlain[i] is null || gPlain[i].IsInvalid) { Assert.IsTrue(gFast[i] is null || gFast[i].IsInvalid || gFast[i].abs().max().item<float>() == 0, names[i]); continue; }
            double scale = gPlain[i].abs().max().item<float>();
            double diff = gPlain[i].sub(gFast[i]).abs().max().item<float>();
            // (the key bias's gradient is zero in exact arithmetic, softmax ignores a shift shared by all keys: rounding only)
            Assert.IsTrue(diff <= 1e-4 * scale + 1e-6 * largest, $"gradient of {names[i]} differs by {diff:E2} (largest entry {scale:E2})");
        }
        Assert.IsTrue(largest > 0, "the gradients must not all be zero");
        m.eval();
    }

    [TestMethod]
    public void EachCfModelLearnsSavesAndLoadsToTheSameScores()
    {
        var labels = Valid.Select(r => r.Label).ToArray();
        foreach (var kind in new[] { CollaborativeKind.Mf, CollaborativeKind.LightGcn, CollaborativeKind.SasRec })
        {
            var log = new List<string>();
            using var cf = CollaborativeModels.Train(kind, Train, Valid, Small, log.Add);
            Assert.AreEqual(CollaborativeModels.Name(kind), cf.Kind);
            var losses = log.Select(l => double.Parse(System.Text.RegularExpressions.Regex.Match(l, @"loss ([0-9.]+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.IsTrue(losses.Count >= 2 && losses[^1] < losses[0], $"{kind}: the loss falls ({string.Join(", ", losses)})");
            var scores = cf.ScoreRows(Valid);
            Assert.IsTrue(Metrics.Auc(scores, labels) > 0.5, $"{kind}: valid AUC above chance");
            var state = cf.ExportState();
            using var copy = CollaborativeModels.Import(cf.Kind, k => state[k]);
            CollectionAssert.AreEqual(scores, copy.ScoreRows(Valid), $"{kind}: save/load gives identical scores");
            Assert.IsTrue(cf.KnowsUser(Train[0].UserId) && !cf.KnowsUser(-5), kind.ToString());
        }
    }

    [TestMethod]
    public void EveryMethodRunsOnEachCfModelAndItSurvivesTheModelFile()
    {
        using var dir = TestPaths.Temp();
        foreach (var kind in new[] { CollaborativeKind.LightGcn, CollaborativeKind.SasRec })
        {
            using var trained = CollaborativeModels.Train(kind, Train, Valid, Small);
            var state = trained.ExportState();
            foreach (var method in new[] { CoraMethod.Cora, CoraMethod.Collm })
            {
                var cf = CollaborativeModels.Import(trained.Kind, k => state[k]);              // the model owns (and disposes) its CF stage
                using var model = new CoraModel(Slice.SmallOptions(method), Microsoft.ML.Cora.Llm.LanguageModel.Load(Slice.LlmPath), cf, Slice.Items);
                var rows = Valid.Take(12).ToList();
                var before = model.Score(rows);
                string path = dir[$"{kind}-{method}.zip"];
                model.Save(path);
                using var loaded = CoraModel.Load(path);
                Assert.AreEqual(cf.Kind, loaded.Cf.Kind);
                CollectionAssert.AreEqual(before, loaded.Score(rows), $"{kind} {method}");
                // Left unset, CoRA's CF-token scale is the CF model's own (MF reads the raw token; these two at RMS 0.4).
                if (method == CoraMethod.Cora) Assert.AreEqual(0.4, loaded.Options.QueryGenerator.CfTokenRms, $"{kind}: its CF-token scale");
            }
        }
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    public void TheMlNetOptionAndTheCliFlagReachEachCfModel()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(CoraInput.From(Train));
        foreach (var kind in new[] { CollaborativeKind.LightGcn, CollaborativeKind.SasRec })
        {
            // LightGCN gets an explicit size; SASRec none, so it takes its own default (not MF's).
            var mfOptions = kind == CollaborativeKind.SasRec ? Small with { EmbeddingDim = null, SequenceLength = CoraDefaults.SasRecMaxLength } : Small;
            var t = ml.Recommendation().Trainers.Cora(new CoraTrainer.Options { Method = CoraMethod.Mf, CollaborativeFilter = kind, MatrixFactorization = mfOptions, ItemTitles = Slice.Items.Titles.ToDictionary(kv => kv.Key, kv => kv.Value) });
            var model = t.Fit(train);
            Assert.AreEqual(CollaborativeModels.Name(kind), model.Model.Cf.Kind);
            Assert.AreEqual(kind == CollaborativeKind.SasRec ? CoraDefaults.SasRecEmbeddingDim : Small.EmbeddingDim, model.Model.Cf.EmbeddingDim, $"{kind}: embedding size");
            var top = model.Recommend(Train[0].UserId, 3);
            Assert.AreEqual(3, top.Count, $"{kind}: candidate retrieval works");
        }
        using var dir = TestPaths.Temp();
        var (code, stdout, err) = CliTests.Cli("train", "--train", Slice.TrainPath, "--valid", Slice.ValidPath, "--items", Slice.ItemsPath, "--method", "mf",
            "--cf", "sasrec", "--mf-dim", "8", "--mf-epochs", "1", "--out", dir["s.zip"]);
        Assert.AreEqual(0, code, err);
        var loaded = CoraTransformer.Find(new MLContext().Model.LoadCora(dir["s.zip"], out _));
        Assert.AreEqual("sasrec", loaded.Model.Cf.Kind);
        Assert.AreEqual(8, loaded.Model.Cf.EmbeddingDim, "--mf-dim reaches SASRec");
        Assert.AreEqual(CoraDefaults.SasRecMaxLength, ((SasRec)loaded.Model.Cf).MaxLength);
        var sasrecScores = loaded.Model.Cf.ScoreRows(Valid);
        loaded.Dispose();
        // --cf-from: the CF stage of a saved model, reused as it is (not retrained).
        (code, stdout, err) = CliTests.Cli("train", "--train", Slice.TrainPath, "--valid", Slice.ValidPath, "--items", Slice.ItemsPath, "--method", "mf",
            "--cf-from", dir["s.zip"], "--out", dir["r.zip"]);
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "CF stage: sasrec from");
        (code, _, err) = CliTests.Cli("train", "--train", Slice.TrainPath, "--valid", Slice.ValidPath, "--items", Slice.ItemsPath, "--method", "mf",
            "--cf-from", dir["s.zip"], "--out", dir["s.zip"]);
        Assert.AreEqual(2, code, "the output may not replace the model the CF stage comes from");
        StringAssert.Contains(err, "--out");
        Assert.ThrowsExactly<ArgumentException>(() => ml.Recommendation().Trainers.Cora(new CoraTrainer.Options { Method = CoraMethod.Mf, CollaborativeFilter = (CollaborativeKind)7 }));
        var reused = CoraTransformer.Find(new MLContext().Model.LoadCora(dir["r.zip"], out _));
        CollectionAssert.AreEqual(sasrecScores, reused.Model.Cf.ScoreRows(Valid));
        reused.Dispose();
        (code, _, err) = CliTests.Cli("train", "--train", Slice.TrainPath, "--valid", Slice.ValidPath, "--items", Slice.ItemsPath, "--method", "mf", "--cf", "bpr", "--out", dir["x.zip"]);
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "--cf");
        foreach (var (flag, value) in new[] { ("--mf-lr", "0"), ("--mf-wd", "-1"), ("--mf-dim", "0") })
        {
            (code, _, err) = CliTests.Cli("train", "--train", Slice.TrainPath, "--valid", Slice.ValidPath, "--items", Slice.ItemsPath, "--method", "mf", "--cf", "sasrec", flag, value, "--out", dir["x.zip"]);
            Assert.AreEqual(2, code, $"{flag} {value}");
            StringAssert.Contains(err, flag);
            Assert.IsFalse(File.Exists(dir["x.zip"]));
        }
    }
}

[TestClass]
public class CollaborativeRegistryTests
{
    [TestMethod]
    public void EveryCfKindIsOneRegisteredUnitAndEveryLookupGoesThroughIt()
    {
        var kinds = Enum.GetValues<CollaborativeKind>();
        CollectionAssert.AreEquivalent(kinds, CollaborativeModels.All.Select(u => u.Kind).ToArray(), "one unit per kind");
        foreach (var u in CollaborativeModels.All)
        {
            Assert.AreEqual(u.Kind, CollaborativeModels.Parse(u.Name));
            Assert.AreEqual(u.Kind, CollaborativeModels.Parse(u.Name.ToUpperInvariant()));
            foreach (var a in u.Aliases) Assert.AreEqual(u.Kind, CollaborativeModels.Parse(a));
            Assert.AreEqual(u.DefaultEmbeddingDim, new MatrixFactorizationOptions().EmbeddingDimFor(u.Kind), "defaults come from the unit");
            Assert.AreEqual(u.DefaultLearningRate, new MatrixFactorizationOptions().LearningRateFor(u.Kind));
        }
        Assert.AreEqual(3, CollaborativeModels.All.Select(u => u.Name).Distinct().Count());
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => CollaborativeModels.Parse("bpr")).Message, "use mf, lightgcn, sasrec");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CollaborativeModels.Import("bpr", _ => throw new InvalidOperationException())).Message, "this Cora knows: mf, lightgcn, sasrec");
        var (_, help, _) = CliTests.Cli("train", "--help");
        StringAssert.Contains(help, "mf, lightgcn, sasrec");
    }
}
