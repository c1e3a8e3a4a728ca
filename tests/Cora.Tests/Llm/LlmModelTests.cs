using Microsoft.ML.Cora.IO;
using System.Text.Json.Nodes;
using Microsoft.ML.Cora.Llm;
using TorchSharp;
using static TorchSharp.torch;

namespace Cora.Tests;

[TestClass]
public class LlmModelTests
{
    internal static LlamaConfig SmallGqa(bool tied = false, bool bias = true, string type = "qwen2") => new LlamaConfig
    {
        ModelType = type, HiddenSize = 32, IntermediateSize = 48, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        VocabSize = 40, MaxPositionEmbeddings = 64, RmsNormEps = 1e-6, RopeTheta = 10000, TieWordEmbeddings = tied, AttentionBias = bias,
    }.Validate();

    private static Tensor Ids(int b, int t, int vocab, int seed)
    {
        var g = new torch.Generator((ulong)seed);
        return torch.randint(3, vocab, new long[] { b, t }, generator: g);
    }

    [TestMethod]
    public void RandomGqaUntiedWithBiasesRoundTripsThroughSafetensors()
    {
        using var tmp = TestPaths.Temp();
        using var m = LlamaForCausalLM.CreateRandom(SmallGqa(), seed: 7);
        Assert.IsNotNull(m.lm_head);
        Assert.IsNotNull(m.model.layers[0].self_attn.q_proj.bias);
        Assert.IsNull(m.model.layers[0].self_attn.o_proj.bias);
        CheckpointLoader.SaveHuggingFace(m, tmp.Path);
        using var loaded = CheckpointLoader.LoadHuggingFace(tmp.Path);
        Assert.AreEqual(m.Config, loaded.Config);
        using var ids = Ids(2, 9, 40, 1);
        using var _ = torch.no_grad();
        Assert.AreEqual(0.0, TensorAssert.MaxAbsDiff(m.Logits(ids), loaded.Logits(ids)));
    }

    [TestMethod]
    public void ShardedSafetensorsLoad()
    {
        using var tmp = TestPaths.Temp();
        using var m = LlamaForCausalLM.CreateRandom(SmallGqa(tied: true, bias: false, type: "llama"), seed: 3);
        File.WriteAllText(tmp["config.json"], m.Config.ToJson());
        var all = m.named_parameters().ToList();
        var map = new JsonObject();
        for (int s = 0; s < 2; s++)
        {
            string file = $"model-0000{s + 1}-of-00002.safetensors";
            var part = all.Where((p, i) => i % 2 == s).ToList();
            SafetensorsFile.Write(tmp[file], part.Select(p => KeyValuePair.Create(p.name, (Tensor)p.parameter)));
            foreach (var p in part) map[p.name] = file;
        }
        File.WriteAllText(tmp["model.safetensors.index.json"], new JsonObject { ["weight_map"] = map }.ToJsonString());
        using var loaded = CheckpointLoader.LoadHuggingFace(tmp.Path);
        using var ids = Ids(1, 5, 40, 2);
        using var _ = torch.no_grad();
        Assert.AreEqual(0.0, TensorAssert.MaxAbsDiff(m.Logits(ids), loaded.Logits(ids)));
    }

    [TestMethod]
    public void Bf16WeightsLoadAsFloat32()
    {
        using var tmp = TestPaths.Temp();
        using var m = LlamaForCausalLM.CreateRandom(SmallGqa(), seed: 5);
        File.WriteAllText(tmp["config.json"], (m.Config with { TorchDtype = "bfloat16" }).ToJson());
        SafetensorsFile.Write(tmp["model.safetensors"], m.named_parameters().Select(p => KeyValuePair.Create(p.name, p.parameter.to(ScalarType.BFloat16))));
        using var loaded = CheckpointLoader.LoadHuggingFace(tmp.Path);
        Assert.AreEqual(ScalarType.Float32, loaded.HeadWeight.dtype);
        using var expected = m.HeadWeight.to(ScalarType.BFloat16).to(ScalarType.Float32);
        Assert.AreEqual(0.0, TensorAssert.MaxAbsDiff(expected, loaded.HeadWeight));
    }

    [TestMethod]
    public void LastTokenLogitsAgreeWithFullLogitsUnderRightAndLeftPadding()
    {
        using var m = LlamaForCausalLM.CreateRandom(SmallGqa(), seed: 11);
        using var _ = torch.no_grad();
        var lengths = new[] { 7, 3, 5 };
        var rows = lengths.Select((len, i) => Ids(1, len, 40, 100 + i)).ToArray();
        long T = lengths.Max();
        var vocab = new long[] { 5, 17, 33 };
        foreach (bool left in new[] { false, true })
        {
            var ids = torch.zeros(3, T, dtype: ScalarType.Int64);
            var mask = torch.zeros(3, T, dtype: ScalarType.Int64);
            for (int i = 0; i < 3; i++)
            {
                long off = left ? T - lengths[i] : 0;
                ids[i].narrow(0, off, lengths[i]).copy_(rows[i][0]);
                mask[i].narrow(0, off, lengths[i]).fill_(1);
            }
            using var batched = m.LastTokenLogits(m.Embed(ids), mask, null, vocab);      // [3, 3]
            using var full = m.LastTokenLogits(m.Embed(ids), mask, null);                 // [3, V]
            using var everyPosition = m.LastTokenLogits(m.Embed(ids), mask, null, vocab, finalLayerAtLastToken: false);
            TensorAssert.Close(everyPosition, batched, 1e-5, $"left={left}: the final layer at the last token only");
            for (int i = 0; i < 3; i++)
            {
                using var single = m.Logits(rows[i])[0, -1];                               // [V]
                TensorAssert.Close(single, full[i], 1e-5, $"row {i} left={left} full vocab");
                TensorAssert.Close(single.index_select(0, torch.tensor(vocab)), batched[i], 1e-5, $"row {i} left={left} selected ids");
            }
        }
    }

    [TestMethod]
    public void Llama3RopeScalingReadFromConfig()
    {
        using var tmp = TestPaths.Temp();
        var cfg = SmallGqa(type: "llama") with { RopeScaling = new RopeScaling(8, 1, 4, 16), RopeTheta = 500000 };
        using var m = LlamaForCausalLM.CreateRandom(cfg, 1);
        CheckpointLoader.SaveHuggingFace(m, tmp.Path);
        var back = LlamaConfig.FromJsonFile(tmp["config.json"]);
        Assert.AreEqual(cfg.RopeScaling, back.RopeScaling);
        // The scaling changes positions beyond the original context: logits must differ from the unscaled model.
        using var plain = new LlamaForCausalLM(cfg with { RopeScaling = null });
        using (torch.no_grad()) foreach (var (n, p) in plain.named_parameters()) p.copy_(m.get_parameter(n)!);
        using var ids = Ids(1, 40, 40, 9);
        using var __ = torch.no_grad();
        Assert.IsTrue(TensorAssert.MaxAbsDiff(m.Logits(ids), plain.Logits(ids)) > 1e-4);
    }

    /// <summary>Per-sample low-rank hook: scale * P(x @ A_b) on every q, k, v, o.</summary>
    private sealed class TestHook : IProjectionHook
    {
        public Tensor A = null!;  // [B, in, r]
        public Dictionary<string, TorchSharp.Modules.Linear> P = new();
        public double Scale = 2.0;
        public Tensor? Delta(ProjectionSite site, Tensor x) =>
            P.TryGetValue(site.Name, out var p) ? LowRank.PerSample(x, A, p, Scale, 0.0, false) : null;
    }

    [TestMethod]
    public void LowRankHookWithZeroPLeavesLogitsUnchangedAndEqualsMergedWeights()
    {
        using var m = LlamaForCausalLM.CreateRandom(SmallGqa(type: "llama", bias: false), seed: 21);
        using var _ = torch.no_grad();
        int r = 3, B = 2;
        var hook = new TestHook { A = torch.randn(B, 32, r, generator: new torch.Generator(1)) };
        var sites = m.Sites(new[] { ProjectionKind.Q, ProjectionKind.K, ProjectionKind.V, ProjectionKind.O });
        Assert.AreEqual(8, sites.Count);
        foreach (var s in sites)
        {
            var lin = torch.nn.Linear(r, s.OutFeatures, hasBias: false);
            lin.weight!.zero_();
            hook.P[s.Name] = lin;
        }
        using var ids = Ids(B, 6, 40, 4);
        using var baseLogits = m.Logits(ids);
        using var zeroP = m.Logits(ids, null, hook);
        Assert.AreEqual(0.0, TensorAssert.MaxAbsDiff(baseLogits, zeroP), "P = 0 must leave logits unchanged");

        var g = new torch.Generator(2);
        foreach (var lin in hook.P.Values) lin.weight!.copy_(torch.randn(lin.weight.shape, generator: g).mul(0.1));
        using var hooked = m.Logits(ids, null, hook);
        Assert.IsTrue(TensorAssert.MaxAbsDiff(baseLogits, hooked) > 1e-3, "non-zero P must change logits");
        for (int b = 0; b < B; b++)
        {
            using var merged = LlamaForCausalLM.CreateRandom(m.Config, 0);
            foreach (var (n, p) in merged.named_parameters()) p.copy_(m.get_parameter(n)!);
            foreach (var layer in merged.model.layers)
                foreach (var proj in new[] { layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj })
                {
                    var a = hook.A[b];                                  // [in, r]
                    var pw = hook.P[proj.Site.Name].weight!;            // [out, r]
                    proj.weight.add_(a.matmul(pw.t()).t().mul(hook.Scale));   // W + scale * (A P)^T
                }
            using var expected = merged.Logits(ids[b].unsqueeze(0));
            TensorAssert.Close(expected[0], hooked[b], 1e-4, $"sample {b}: hook vs merged weights");
        }
    }

    [TestMethod]
    public void SdpaPathEqualsExplicitMaskPath()
    {
        // The causal fast path (right padding / no mask) and the explicit boolean mask must agree.
        using var m = LlamaForCausalLM.CreateRandom(SmallGqa(), seed: 2);
        using var _ = torch.no_grad();
        using var ids = Ids(2, 6, 40, 8);
        using var noMask = m.LastTokenLogits(m.Embed(ids), null, null);
        var leftPadded = torch.cat(new[] { torch.zeros(2, 1, dtype: ScalarType.Int64), ids }, 1);
        var mask = torch.cat(new[] { torch.zeros(2, 1, dtype: ScalarType.Int64), torch.ones(2, 6, dtype: ScalarType.Int64) }, 1);
        using var masked = m.LastTokenLogits(m.Embed(leftPadded), mask, null);
        TensorAssert.Close(noMask, masked, 1e-5, "explicit mask vs causal");
    }

    [TestMethod]
    public void HuggingFaceJsonTokenizerLoadsAndHandlesBos()
    {
        using var tmp = TestPaths.Temp();
        var vocab = new JsonObject { ["<unk>"] = 0, ["<s>"] = 1, ["</s>"] = 2, ["Yes"] = 3, ["No"] = 4, ["movie"] = 5 };
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(
                new JsonObject { ["id"] = 1, ["content"] = "<s>", ["special"] = true, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false },
                new JsonObject { ["id"] = 2, ["content"] = "</s>", ["special"] = true, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false }),
            ["normalizer"] = null, ["post_processor"] = null, ["decoder"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "Whitespace" },
            ["model"] = new JsonObject { ["type"] = "WordLevel", ["vocab"] = vocab, ["unk_token"] = "<unk>" },
        };
        File.WriteAllText(tmp["tokenizer.json"], json.ToJsonString());
        var tok = TextTokenizer.Open(tmp["tokenizer.json"]);
        Assert.AreEqual(1, tok.BosId);
        Assert.AreEqual(2, tok.EosId);
        CollectionAssert.AreEqual(new[] { 1, 3, 5, 0 }, tok.Encode("Yes movie zebra", addBos: true).ToArray());
        CollectionAssert.AreEqual(new[] { 4 }, tok.Encode("No", addBos: false).ToArray());
    }
}
