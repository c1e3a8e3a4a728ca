using Microsoft.ML.Cora;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Training;
using TorchSharp;

namespace Cora.Tests;

/// <summary><c>--user-dropout</c>: a seeded share of training rows scored as if their user were new to the CF stage.</summary>
[TestClass]
public class UserDropoutTests
{
    private static TrainingOptions Options(double userDropout) => new()
    {
        BatchSize = 4, Epochs = 1, MaxSteps = 4, ValidateEvery = 2, Patience = 0, LearningRate = 3e-3, UserDropout = userDropout,
    };

    private static List<Interaction> BothLabels() =>
        Slice.Valid.Skip(300).Where(r => r.Label).Take(4).Concat(Slice.Valid.Skip(300).Where(r => !r.Label).Take(4)).ToList();

    [TestMethod]
    public void TheChosenShareOfRowsGetsAUserTheCfStageNeverSawAndNothingElseChanges()
    {
        using var mf = Slice.SmallMf();
        var rows = Slice.Train.Where(r => mf.KnowsUser(r.UserId)).Take(2000).ToList();
        Assert.AreEqual(2000, rows.Count);
        var dropped = TrainingLoop.AsNewUsers(rows, mf, 0.3, new Random(11));
        Assert.AreEqual(rows.Count, dropped.Count);
        int changed = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            if (ReferenceEquals(rows[i], dropped[i])) continue;
            changed++;
            Assert.IsFalse(mf.KnowsUser(dropped[i].UserId), $"row {i}: user {dropped[i].UserId} is one the CF stage knows");
            Assert.AreEqual(rows[i] with { UserId = dropped[i].UserId }, dropped[i], $"row {i}: only the user changes");
        }
        Assert.IsTrue(changed is > 520 and < 680, $"about 30% of 2,000 rows change; {changed} did");
        CollectionAssert.AreEqual(dropped, TrainingLoop.AsNewUsers(rows, mf, 0.3, new Random(11)), "the same stream, the same rows");
        Assert.IsTrue(TrainingLoop.AsNewUsers(rows, mf, 0, new Random(11)).Select((r, i) => ReferenceEquals(r, rows[i])).All(x => x), "share 0 changes nothing");
    }

    [TestMethod]
    public void ADroppedRowKeepsItsPromptAndScoresAsANewUserWithItsHistoryEstimate()
    {
        var options = new MatrixFactorizationOptions { EmbeddingDim = 16, MaxEpochs = 3, Patience = 2, History = UserHistory.Cold };
        var mf = MatrixFactorization.Train(Slice.Train.Take(4000).ToList(), Slice.Valid.Take(400).ToList(), options);
        using var m = Slice.Model(CoraMethod.Cora, mf);
        // A fresh model's collaborative weights start at zero (the CF token changes nothing yet); a few steps make them matter.
        TrainingLoop.Train(m, Slice.Train.Skip(800).Take(16).ToList(), BothLabels(), Options(0) with { LearningRate = 1e-2 });
        m.Trainable.eval();
        var batch = Slice.Train.Take(4000).Where(r => mf.KnowsUser(r.UserId) && r.History.Any(i => i != 0 && mf.KnowsItem(i))).Take(12).ToList();
        Assert.AreEqual(12, batch.Count, "the slice needs known users with a known liked item");
        // A ready prompt (set per row object) must survive the new user id: the copy is scored with the original row's prompt.
        m.SetPrompt(batch[0], "Does a reader of fairy tales enjoy this one?");
        var dropped = TrainingLoop.AsNewUsers(batch, m.Cf, 0.5, new Random(5));
        var changed = Enumerable.Range(0, batch.Count).Where(i => !ReferenceEquals(batch[i], dropped[i])).ToList();
        Assert.IsTrue(changed.Count is > 0 and < 12, $"a mixed batch ({changed.Count} of 12 changed)");
        if (!changed.Contains(0)) { dropped[0] = batch[0] with { UserId = dropped[changed[0]].UserId }; changed.Insert(0, 0); }
        using var _ = torch.no_grad();
        var prompts = m.PromptsOf(batch);
        CollectionAssert.AreEqual(m.TokenizeText("Does a reader of fairy tales enjoy this one?").Ids, prompts[0].Ids);
        var original = m.Logits(batch, prompts).data<float>().ToArray();
        var withNewUsers = m.Logits(dropped, prompts).data<float>().ToArray();
        // Each row alone: a user the CF stage never saw gets the history estimate (MF's cold mode), not the trained vector.
        var estimate = mf.UserEmbeddings(changed.Select(i => dropped[i]).ToList());
        var own = mf.UserEmbeddings(changed.Select(i => batch[i]).ToList());
        Assert.IsTrue(estimate.abs().sum().item<float>() > 0, "the new users get a non-zero estimate from their liked items");
        Assert.IsFalse(estimate.allclose(own, 1e-4, 1e-5), "the estimate is not the trained vector");
        for (int i = 0; i < batch.Count; i++)
        {
            if (changed.Contains(i)) Assert.AreNotEqual(original[i], withNewUsers[i], 1e-6f, $"row {i} is scored with the new user's vector");
            else Assert.AreEqual(original[i], withNewUsers[i], 1e-4f, $"row {i} keeps its user and its score");
        }
        var alone = m.Logits(new[] { dropped[0] }, new[] { prompts[0] }).data<float>()[0];
        Assert.AreEqual(alone, withNewUsers[0], 1e-4f, "the dropped row scores as the same row with a new user scored alone");
    }

    [TestMethod]
    public void TrainingWithItIsSeededDiffersFromTrainingWithoutAndIsPartOfTheCheckpoint()
    {
        var rows = Slice.Train.Skip(800).Take(16).ToList();
        var valid = BothLabels();
        float[] Run(double p)
        {
            using var m = Slice.Model(CoraMethod.Cora);
            TrainingLoop.Train(m, rows, valid, Options(p));
            return m.Score(valid, 8);
        }
        var without = Run(0);
        var with = Run(0.5);
        CollectionAssert.AreEqual(with, Run(0.5), "same seed, same rows dropped, same weights");
        CollectionAssert.AreNotEqual(without, with, "dropped rows change what is learned");
        using var n = Slice.Model(CoraMethod.Cora);
        Assert.AreNotEqual(TrainingLoop.Fingerprint(n, rows, valid, Options(0))["training options"], TrainingLoop.Fingerprint(n, rows, valid, Options(0.5))["training options"],
            "a checkpoint made with another share is not resumed");
        Assert.IsFalse(System.Text.Json.JsonSerializer.Serialize(new TrainingOptions()).Contains("UserDropout"), "checkpoints made before the option stay resumable");
    }

    [TestMethod]
    public void OnlyCollmAndCoraOverMfOrLightGcnTakeItAndEveryEntryPointSaysSo()
    {
        Assert.IsNull(TrainingOptions.UserDropoutError(CoraMethod.Cora, CollaborativeKind.Mf, 0.2));
        Assert.IsNull(TrainingOptions.UserDropoutError(CoraMethod.Collm, CollaborativeKind.LightGcn, 0.2));
        Assert.IsNull(TrainingOptions.UserDropoutError(CoraMethod.LlmLora, CollaborativeKind.SasRec, 0), "0 is always allowed");
        StringAssert.Contains(TrainingOptions.UserDropoutError(CoraMethod.Cora, CollaborativeKind.SasRec, 0.2), "SASRec builds the user from the liked history");
        StringAssert.Contains(TrainingOptions.UserDropoutError(CoraMethod.LlmLora, CollaborativeKind.Mf, 0.2), "method LlmLora reads none");

        foreach (var bad in new[] { -0.1, 0.95, double.NaN })
            Assert.AreEqual("UserDropout", new TrainingOptions { UserDropout = bad }.Validate().Single().Option, $"{bad} is refused");

        using var lora = Slice.Model(CoraMethod.LlmLora);
        var e = Assert.ThrowsExactly<ArgumentException>(() => TrainingLoop.Train(lora, Slice.Train.Take(8).ToList(), BothLabels(), Options(0.2)));
        StringAssert.StartsWith(e.Message, "Training.UserDropout: 0.2 applies to CoLLM and CoRA");

        var trainer = new CoraTrainer.Options { Method = CoraMethod.Cora, CollaborativeFilter = CollaborativeKind.SasRec, LlmPath = Slice.LlmPath, ItemTitles = new Dictionary<int, string>() };
        trainer.Training.UserDropout = 0.2;
        StringAssert.Contains(trainer.Validate().Single(x => x.Option == "Training.UserDropout").Problem, "SASRec");
        trainer.CollaborativeFilter = CollaborativeKind.LightGcn;
        Assert.IsFalse(trainer.Validate().Any(x => x.Option == "Training.UserDropout"), string.Join("; ", trainer.Validate()));

        // A CF model of one's own: the training loop asks the model, not its type, whether it builds the user from the history.
        using var mf = Slice.SmallMf();
        foreach (bool fromHistory in new[] { true, false })
        {
            using var m = new CoraModel(Slice.SmallOptions(CoraMethod.Cora), Microsoft.ML.Cora.Llm.LanguageModel.Load(Slice.LlmPath), new OwnCf(mf, fromHistory), Slice.Items);
            var rows = Slice.Train.Where(r => mf.KnowsUser(r.UserId)).Take(16).ToList();
            if (fromHistory)
            {
                var own = Assert.ThrowsExactly<ArgumentException>(() => TrainingLoop.Train(m, rows, BothLabels(), Options(0.2)));
                StringAssert.StartsWith(own.Message, "Training.UserDropout: 0.2 applies over CF models that look the user up by id (MF, LightGCN); the CF model 'mf' builds the user from the liked history");
            }
            else Assert.AreEqual(4, TrainingLoop.Train(m, rows, BothLabels(), Options(0.2)).Steps, "a CF model that looks users up by id trains with it");
        }
    }

    /// <summary>MF behind a class of its own that says whether it builds users from the history (the interface's default: it does not).</summary>
    private sealed class OwnCf(MatrixFactorization mf, bool fromHistory) : ICollaborativeModel
    {
        public string Kind => "mf";
        public bool UserFromHistory => fromHistory;
        public int EmbeddingDim => mf.EmbeddingDim;
        public bool KnowsUser(int userId) => mf.KnowsUser(userId);
        public bool KnowsItem(int itemId) => mf.KnowsItem(itemId);
        public IReadOnlyList<long> ItemIds => mf.ItemIds;
        public torch.Tensor UserEmbeddings(IReadOnlyList<Interaction> rows) => mf.UserEmbeddings(rows);
        public torch.Tensor ItemEmbeddings(long[] itemIds) => mf.ItemEmbeddings(itemIds);
        public torch.Tensor Score(IReadOnlyList<Interaction> rows) => mf.Score(rows);
        public float[] ScoreRows(IReadOnlyList<Interaction> rows) => mf.ScoreRows(rows);
        public torch.Device Device => mf.Device;
        public void MoveTo(torch.Device device, torch.ScalarType dtype) => mf.MoveTo(device, dtype);
        public IEnumerable<TorchSharp.Modules.Parameter> Weights => mf.Weights;
        public Dictionary<string, torch.Tensor> ExportState() => mf.ExportState();
        public void Dispose() { }
    }
}
