using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.IO;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Cora.Tests;

/// <summary>CoRA's generator reads the user and item halves of the CF token at a set RMS (QueryGeneratorOptions.CfTokenRms) or raw.</summary>
[TestClass]
public class CfTokenScaleTests
{
    private const double Rms = 0.4;

    private static CoraModel Model(double? rms = Rms) =>
        new(Slice.SmallOptions(CoraMethod.Cora) is var o ? o with { QueryGenerator = o.QueryGenerator with { CfTokenRms = rms } } : null!,
            LanguageModel.Load(Slice.LlmPath), Slice.SmallMf(), Slice.Items);

    private static float[] Scale(CoraModel m) => m.Generator!.token_scale.data<float>().ToArray();

    [TestMethod]
    public void CalibrationPutsEachHalfOfTheTokenAtUnitRms()
    {
        using var m = Model();
        var rows = Slice.Train.Take(300).ToList();
        Assert.IsTrue(Scale(m).All(s => s == 1f), "ones until calibrated");
        Assert.IsTrue(m.Trainable.state_dict().ContainsKey("query_generator.token_scale"), "the scale is saved with the trainable tensors");
        Assert.IsFalse(m.Trainable.parameters().Any(p => ReferenceEquals(p, m.Generator!.token_scale)), "the scale is not trained");
        m.CalibrateCfToken(rows, seed: 1);
        int k = m.Cf.EmbeddingDim;
        using (torch.no_grad())
        {
            var token = CollaborativeLoraMethod.CfToken(m.Cf, rows, rows.Select(r => (long)r.ItemId).ToArray()).mul(m.Generator!.token_scale);
            foreach (var (start, what) in new[] { (0L, "user"), ((long)k, "item") })
                Assert.AreEqual(Rms, Math.Sqrt(token.narrow(1, start, k).pow(2).mean().item<float>()), 1e-4 * Rms, $"{what} half");
        }
        var s = Scale(m);
        Assert.IsTrue(s.Take(k).All(x => x == s[0]) && s.Skip(k).All(x => x == s[k]), "one scale per half");

        using var off = Model(rms: 0);
        off.CalibrateCfToken(rows, seed: 1);
        Assert.IsTrue(Scale(off).All(x => x == 1f), "CfTokenRms = 0 keeps the raw token");
        using var half = Model(rms: 0.5);
        half.CalibrateCfToken(rows, seed: 1);
        for (int j = 0; j < s.Length; j++) Assert.AreEqual(s[j] * 0.5 / Rms, Scale(half)[j], 1e-5 * s[j], "the scale follows the target");
    }

    [TestMethod]
    public void LeftUnsetTheScaleIsTheCfModelsOwnAndTheModelStoresIt()
    {
        // MF: the raw token, as CoRA's code reads it; LightGCN and SASRec, whose halves sit at very different scales: RMS 0.4.
        var unset = new QueryGeneratorOptions();
        Assert.IsNull(unset.CfTokenRms);
        Assert.AreEqual(0.0, unset.CfTokenRmsFor("mf"));
        Assert.AreEqual(0.4, unset.CfTokenRmsFor("lightgcn"));
        Assert.AreEqual(0.4, unset.CfTokenRmsFor("sasrec"));
        Assert.AreEqual(0.25, new QueryGeneratorOptions { CfTokenRms = 0.25 }.CfTokenRmsFor("sasrec"), "a value given wins");
        Assert.ThrowsExactly<InvalidDataException>(() => unset.CfTokenRmsFor("bpr"));

        using var tmp = TestPaths.Temp();
        using (var m = Model(rms: null))
        {
            Assert.AreEqual(0.0, m.Options.QueryGenerator.CfTokenRms, "resolved for the model's CF stage (MF) when the model is made");
            m.CalibrateCfToken(Slice.Train.Take(300).ToList(), seed: 1);
            Assert.IsTrue(Scale(m).All(x => x == 1f), "MF's default keeps the raw token");
            m.Save(tmp["m.zip"]);
        }
        using var loaded = CoraModel.Load(tmp["m.zip"]);
        Assert.AreEqual(0.0, loaded.Options.QueryGenerator.CfTokenRms, "the saved options name the scale the model was made with");
    }

    [TestMethod]
    public void TheTrainerCalibratesAndTheScaleReachesTheGenerator()
    {
        var rows = Slice.Train.Take(16).ToList();
        using (var m = Model())
        {
            TrainingLoop.Train(m, rows, Slice.Valid.Take(8).ToList(), new TrainingOptions { BatchSize = 8, MaxSteps = 1, ValidateEvery = 1000 });
            var set = Scale(m);
            Assert.IsTrue(set.All(x => x != 1f && float.IsFinite(x) && x > 0), "set from the training rows before the first step");
            TrainingLoop.Train(m, Slice.Train.Skip(500).Take(16).ToList(), Slice.Valid.Take(8).ToList(), new TrainingOptions { BatchSize = 8, MaxSteps = 1, ValidateEvery = 1000 });
            CollectionAssert.AreEqual(set, Scale(m), "training further (other rows) keeps the scale the generator was trained with");
        }
        using var fresh = Model();
        fresh.Trainable.eval();
        var items = rows.Select(r => (long)r.ItemId).ToArray();
        using var _ = torch.no_grad();
        var a0 = fresh.Generator!.Forward(CollaborativeLoraMethod.CfToken(fresh.Cf, rows, items));    // [B, d, r]
        fresh.CalibrateCfToken(rows, seed: 1);
        var a1 = fresh.Generator!.Forward(CollaborativeLoraMethod.CfToken(fresh.Cf, rows, items));
        Assert.IsTrue(a0.sub(a1).abs().max().item<float>() > 1e-4, "the scale reaches the generator's output");
    }

    [TestMethod]
    public void TheScaleIsSavedAndAFormat2FileLoadsWithTheRawToken()
    {
        using var tmp = TestPaths.Temp();
        var rows = Slice.Valid.Take(12).ToList();
        float[] scale, scores;
        using (var m = Model())
        {
            m.CalibrateCfToken(Slice.Train.Take(300).ToList(), seed: 1);
            // Give the collaborative weights a value so that scores depend on A (and so on the scale).
            using (torch.no_grad()) foreach (var p in ((CollaborativeLoraParts)m.Trainable).collaborative_weights.parameters()) p.normal_(0, 0.5);
            scale = Scale(m); scores = m.Score(rows);
            m.Save(tmp["m.zip"]);
        }
        using (var loaded = CoraModel.Load(tmp["m.zip"]))
        {
            CollectionAssert.AreEqual(scale, Scale(loaded));
            CollectionAssert.AreEqual(scores, loaded.Score(rows));
            Assert.AreEqual(Rms, loaded.Options.QueryGenerator.CfTokenRms);
        }

        // The same file as format 2 wrote it: no token_scale tensor, FormatVersion 2.
        File.Copy(tmp["m.zip"], tmp["v2.zip"]);
        using (var z = ZipFile.Open(tmp["v2.zip"], ZipArchiveMode.Update))
        {
            var entry = z.GetEntry("trainable.safetensors")!;
            string extracted = tmp["t.safetensors"];
            entry.ExtractToFile(extracted);
            var file = SafetensorsFile.Open(extracted);
            var kept = file.Entries.Keys.Where(k => k != "query_generator.token_scale").Select(k => new KeyValuePair<string, Tensor>(k, file.Read(k))).ToList();
            Assert.AreEqual(file.Entries.Count - 1, kept.Count);
            var bytes = new MemoryStream();
            SafetensorsFile.Write(bytes, kept);
            entry.Delete();
            using (var w = z.CreateEntry("trainable.safetensors").Open()) w.Write(bytes.ToArray());
            var me = z.GetEntry("manifest.json")!;
            JsonNode json;
            using (var r = new StreamReader(me.Open())) json = JsonNode.Parse(r.ReadToEnd())!;
            json["FormatVersion"] = 2;
            json["EntrySha256"]!["trainable.safetensors"] = Convert.ToHexString(SHA256.HashData(bytes.ToArray())).ToLowerInvariant();
            json["EntrySize"]!["trainable.safetensors"] = bytes.Length;
            me.Delete();
            using var mw = new StreamWriter(z.CreateEntry("manifest.json").Open());
            mw.Write(json.ToJsonString());
        }
        using var old = CoraModel.Load(tmp["v2.zip"]);
        Assert.IsTrue(Scale(old).All(x => x == 1f), "format 2: the raw token");
        Assert.AreEqual(0.0, old.Options.QueryGenerator.CfTokenRms, "and the options say so");
        var oldScores = old.Score(rows);
        Assert.IsTrue(oldScores.Zip(scores).Any(p => Math.Abs(p.First - p.Second) > 1e-5), "the scale changed the scores, so this file differs");
        // Setting the calibrated scale on the old model gives the new model's scores back: the scale is the only difference.
        using (torch.no_grad()) old.Generator!.token_scale.copy_(torch.tensor(scale));
        var back = old.Score(rows);
        for (int i = 0; i < rows.Count; i++) Assert.AreEqual(scores[i], back[i], 1e-5, $"row {i}");
    }
}
