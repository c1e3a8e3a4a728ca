using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Cora.Runtime;

namespace Microsoft.ML.Cora;

/// <summary>
/// Entry points on <see cref="MLContext"/>. <c>mlContext.Recommendation().Trainers.Cora(...)</c> compiles with Cora
/// alone. If your project also references Microsoft.ML.Recommender (whose <c>Recommendation()</c> lives in namespace
/// <c>Microsoft.ML</c>), importing both namespaces makes <c>Recommendation()</c> ambiguous: call
/// <c>mlContext.CoraRecommendation()</c> instead (same catalog), and keep <c>mlContext.Recommendation()</c> for ML.NET's.
/// </summary>
public static class CoraMLContextExtensions
{
    /// <summary>Cora's recommendation catalog (trainers and evaluation).</summary>
    public static CoraRecommendationCatalog Recommendation(this MLContext mlContext) => CoraRecommendation(mlContext);

    /// <summary>The same catalog under a name that cannot clash with Microsoft.ML.Recommender.</summary>
    public static CoraRecommendationCatalog CoraRecommendation(this MLContext mlContext)
        => new(mlContext);

    /// <summary>
    /// Loads a saved model as <c>mlContext.Model.Load</c> does (which reads Cora models too, with the defaults below), with Cora's
    /// load options: <c>mlContext.Model.LoadCora(path, out schema)</c>.
    /// A model scores on any device whatever device it was trained on: <paramref name="device"/> cpu (default), cuda,
    /// cuda:N or auto; <paramref name="llmDtype"/> auto (bf16 on CUDA, fp32 on the CPU), bf16, fp16 or fp32;
    /// <paramref name="generatorDtype"/> the query generator's matrix products: auto (default: bf16 on a CPU with native bf16
    /// products, fp32 elsewhere), bf16 or fp32 (not stored in the model: its weights are fp32 either way); <paramref name="llmPath"/>
    /// the frozen LLM's folder or .bin when it is no longer where the model was trained (it must match the SHA-256 the model
    /// records). Errors are Cora's own, not wrapped by ML.NET's loader.
    /// </summary>
    public static ITransformer LoadCora(this ModelOperationsCatalog models, string filePath, out DataViewSchema inputSchema,
        string? device = null, string? llmDtype = null, string? generatorDtype = null, string? llmPath = null)
    {
        if (Runtime.CoraDevice.DeviceError(device) is { } de) throw new ArgumentException(de + ".", nameof(device));
        if (Runtime.CoraDevice.DtypeError(llmDtype) is { } te) throw new ArgumentException(te + ".", nameof(llmDtype));
        if (Runtime.CoraDevice.GeneratorDtypeError(generatorDtype) is { } ge) throw new ArgumentException(ge + ".", nameof(generatorDtype));
        IO.FileChecks.RequireRegularFile(filePath, "Model file");
        // Checked here so that a file that is not a zip gets Cora's message and ML.NET leaves no temporary folder behind.
        // The outer ML.NET zip is bounded like Cora's own before ML.NET unpacks any of it.
        try
        {
            using var z = System.IO.Compression.ZipFile.OpenRead(filePath);
            ModelArchive.CheckTotal(z, filePath);
            if (ModelArchive.IsBareModel(z))
                throw new InvalidDataException($"{filePath}: a bare Cora model (written by CoraModel.Save), not an ML.NET model: load it with CoraModel.Load and wrap it with CoraTransformer.Create(mlContext, model).");
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(filePath, StringComparison.Ordinal)) { throw new InvalidDataException($"{filePath}: not a model file (not a readable zip: {e.Message}).", e); }
        // Resolved once here; ML.NET's loader takes no arguments, so the values reach CoraTransformer's loader through PendingLoad.
        CoraTransformer.PendingLoad = new CoraTransformer.LoadSettings(ComputeTarget.Resolve(device, llmDtype), generatorDtype, llmPath);
        try { return models.Load(filePath, out inputSchema); }
        catch (Exception e) when (Unwrapped(e) is { } inner && inner != e)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(inner).Throw();
            throw;
        }
        finally { CoraTransformer.PendingLoad = null; }
    }

    /// <summary>The exception Cora threw inside ML.NET's loader (which reaches it by reflection and wraps what it throws).</summary>
    private static Exception Unwrapped(Exception e)
    {
        while (e is System.Reflection.TargetInvocationException { InnerException: { } inner }) e = inner;
        return e;
    }
}
