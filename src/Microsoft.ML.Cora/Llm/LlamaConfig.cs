using System.Text.Json;
using System.Text.Json.Nodes;

namespace Microsoft.ML.Cora.Llm;

/// <summary>
/// Hyper-parameters of a LLaMA-family decoder, named as in Hugging Face <c>config.json</c>.
/// </summary>
public sealed record LlamaConfig
{
    /// <summary>Architectures Cora reads from a Hugging Face <c>config.json</c> (<c>model_type</c>).</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = new[] { "llama", "mistral", "qwen2" };

    /// <summary>The Hugging Face <c>model_type</c>: llama, mistral or qwen2.</summary>
    public string ModelType { get; init; } = "llama";
    /// <summary>Width of the residual stream (<c>hidden_size</c>).</summary>
    public int HiddenSize { get; init; }
    /// <summary>Width of the MLP (<c>intermediate_size</c>).</summary>
    public int IntermediateSize { get; init; }
    /// <summary>Decoder layers (<c>num_hidden_layers</c>).</summary>
    public int NumHiddenLayers { get; init; }
    /// <summary>Query heads (<c>num_attention_heads</c>).</summary>
    public int NumAttentionHeads { get; init; }
    /// <summary>Key and value heads (<c>num_key_value_heads</c>; fewer than the query heads: grouped-query attention).</summary>
    public int NumKeyValueHeads { get; init; }
    /// <summary>Per-head size; defaults to hidden_size / num_attention_heads.</summary>
    public int HeadDim { get; init; }
    /// <summary>Tokens in the vocabulary (<c>vocab_size</c>).</summary>
    public int VocabSize { get; init; }
    /// <summary>The longest sequence the model takes (<c>max_position_embeddings</c>): prompts are cut to fit.</summary>
    public int MaxPositionEmbeddings { get; init; } = 2048;
    /// <summary>The RMS norms' epsilon (<c>rms_norm_eps</c>).</summary>
    public double RmsNormEps { get; init; } = 1e-6;
    /// <summary>Base of the rotary embeddings' frequencies (<c>rope_theta</c>).</summary>
    public double RopeTheta { get; init; } = 10000.0;
    /// <summary>Llama 3.1-style frequency scaling (rope_scaling.rope_type == "llama3"), or null.</summary>
    public RopeScaling? RopeScaling { get; init; }
    /// <summary>Whether the output head shares the token embedding matrix (<c>tie_word_embeddings</c>).</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Bias on q/k/v projections (Qwen2 style; o_proj never has one).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>The beginning-of-sequence token id (<c>bos_token_id</c>).</summary>
    public int BosTokenId { get; init; } = 1;
    /// <summary>The end-of-sequence token id (<c>eos_token_id</c>).</summary>
    public int EosTokenId { get; init; } = 2;
    /// <summary>Weights dtype recorded in the checkpoint ("float32", "bfloat16", "float16").</summary>
    public string TorchDtype { get; init; } = "float32";

    /// <summary>Width of the keys (and values) of one token: key-value heads x head size.</summary>
    public int KvDim => NumKeyValueHeads * HeadDim;
    /// <summary>Width of the queries of one token: heads x head size.</summary>
    public int AttentionDim => NumAttentionHeads * HeadDim;

    /// <summary>Fills derived values and checks consistency; throws naming the bad field.</summary>
    public LlamaConfig Validate(string source = "config")
    {
        var c = this with
        {
            NumKeyValueHeads = NumKeyValueHeads == 0 ? NumAttentionHeads : NumKeyValueHeads,
            HeadDim = HeadDim == 0 && NumAttentionHeads > 0 ? HiddenSize / NumAttentionHeads : HeadDim,
        };
        void Require(bool ok, string field, string why)
        {
            if (!ok) throw new InvalidDataException($"{source}: '{field}' {why}.");
        }
        Require(c.HiddenSize > 0, "hidden_size", "must be positive");
        Require(c.IntermediateSize > 0, "intermediate_size", "must be positive");
        Require(c.NumHiddenLayers > 0, "num_hidden_layers", "must be positive");
        Require(c.NumAttentionHeads > 0, "num_attention_heads", "must be positive");
        Require(c.VocabSize > 0, "vocab_size", "must be positive");
        Require(c.NumAttentionHeads % c.NumKeyValueHeads == 0, "num_key_value_heads", $"({c.NumKeyValueHeads}) must divide num_attention_heads ({c.NumAttentionHeads})");
        Require(c.HeadDim % 2 == 0, "head_dim", $"({c.HeadDim}) must be even for rotary embeddings");
        Require(c.RmsNormEps > 0, "rms_norm_eps", "must be positive");
        return c;
    }

    /// <summary>Reads a Hugging Face <c>config.json</c>.</summary>
    public static LlamaConfig FromJsonFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model config not found: '{path}'. A Hugging Face model folder needs config.json.", path);
        Microsoft.ML.Cora.IO.FileChecks.RequireRegularFile(path, "Model config");
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e); }
        if (root is not JsonObject o) throw new InvalidDataException($"{path}: expected a JSON object.");
        string modelType = (string?)o["model_type"] ?? "";
        if (!SupportedModelTypes.Contains(modelType))
            throw new NotSupportedException($"{path}: model_type '{modelType}' is not supported. Supported model types: {string.Join(", ", SupportedModelTypes)}.");

        int I(string k, int d = 0) => o[k] is JsonValue v && v.TryGetValue<int>(out var x) ? x : d;
        double D(string k, double d) => o[k] is JsonValue v && v.TryGetValue<double>(out var x) ? x : d;
        bool B(string k, bool d) => o[k] is JsonValue v && v.TryGetValue<bool>(out var x) ? x : d;
        int Token(string k, int d) => o[k] switch
        {
            JsonValue v when v.TryGetValue<int>(out var x) => x,
            JsonArray a when a.Count > 0 && a[0] is JsonValue v0 && v0.TryGetValue<int>(out var y) => y,
            _ => d,
        };
        RopeScaling? scaling = null;
        if (o["rope_scaling"] is JsonObject rs)
        {
            string type = (string?)rs["rope_type"] ?? (string?)rs["type"] ?? "";
            if (type == "llama3")
                scaling = new RopeScaling(
                    rs["factor"]?.GetValue<double>() ?? 8.0,
                    rs["low_freq_factor"]?.GetValue<double>() ?? 1.0,
                    rs["high_freq_factor"]?.GetValue<double>() ?? 4.0,
                    rs["original_max_position_embeddings"]?.GetValue<int>() ?? 8192);
            else if (type != "default" && type != "")
                throw new NotSupportedException($"{path}: rope_scaling type '{type}' is not supported (supported: llama3, default).");
        }
        var cfg = new LlamaConfig
        {
            ModelType = modelType,
            HiddenSize = I("hidden_size"),
            IntermediateSize = I("intermediate_size"),
            NumHiddenLayers = I("num_hidden_layers"),
            NumAttentionHeads = I("num_attention_heads"),
            NumKeyValueHeads = I("num_key_value_heads"),
            HeadDim = I("head_dim"),
            VocabSize = I("vocab_size"),
            MaxPositionEmbeddings = I("max_position_embeddings", 2048),
            RmsNormEps = D("rms_norm_eps", 1e-6),
            RopeTheta = D("rope_theta", 10000.0),
            RopeScaling = scaling,
            TieWordEmbeddings = B("tie_word_embeddings", false),
            AttentionBias = B("attention_bias", modelType == "qwen2"),
            BosTokenId = Token("bos_token_id", 1),
            EosTokenId = Token("eos_token_id", 2),
            TorchDtype = (string?)o["torch_dtype"] ?? "float32",
        };
        return cfg.Validate(path);
    }

    /// <summary>Serialises to Hugging Face <c>config.json</c> form.</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(ModelType == "qwen2" ? "Qwen2ForCausalLM" : ModelType == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM"),
            ["model_type"] = ModelType,
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["head_dim"] = HeadDim,
            ["vocab_size"] = VocabSize,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_theta"] = RopeTheta,
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["attention_bias"] = AttentionBias,
            ["bos_token_id"] = BosTokenId,
            ["eos_token_id"] = EosTokenId,
            ["torch_dtype"] = TorchDtype,
        };
        if (RopeScaling is { } s)
            o["rope_scaling"] = new JsonObject
            {
                ["rope_type"] = "llama3", ["factor"] = s.Factor, ["low_freq_factor"] = s.LowFreqFactor,
                ["high_freq_factor"] = s.HighFreqFactor, ["original_max_position_embeddings"] = s.OriginalMaxPositionEmbeddings,
            };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>A config shaped like SmolLM2-135M (for benchmarks with random weights).</summary>
    public static LlamaConfig SmolLm2_135M() => new LlamaConfig
    {
        HiddenSize = 576, IntermediateSize = 1536, NumHiddenLayers = 30, NumAttentionHeads = 9, NumKeyValueHeads = 3,
        VocabSize = 49152, MaxPositionEmbeddings = 8192, RmsNormEps = 1e-5, RopeTheta = 100000, TieWordEmbeddings = true,
        BosTokenId = 1, EosTokenId = 2,
    }.Validate("SmolLM2-135M");
}
